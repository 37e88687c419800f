//! The `[[zone]]` tables of the policy file, compiled into
//! [`portcullis_context::Zone`]s (the zone itself lives with the session
//! context, which records the zones a client is in).

use std::collections::BTreeMap;

pub use portcullis_context::zone::{parse_cidr, Zone};

use super::config::RawZone;
use super::error::PolicyError;

/// Compiles the `[[zone]]` tables, recording every problem in `errors`.
/// Zones with bad entries are still returned (with their good entries) so
/// rules referencing them don't also produce misleading "unknown zone" errors.
pub(super) fn compile_zones(
    raw: &[RawZone],
    errors: &mut Vec<PolicyError>,
) -> BTreeMap<String, Zone> {
    let mut zones = BTreeMap::new();
    for (index, raw_zone) in raw.iter().enumerate() {
        let label = if raw_zone.name.trim().is_empty() {
            errors.push(PolicyError::EmptyName {
                what: format!("zone #{}", index + 1),
            });
            format!("#{}", index + 1)
        } else {
            raw_zone.name.clone()
        };
        if raw_zone.cidrs.is_empty() {
            errors.push(PolicyError::EmptyZone {
                zone: label.clone(),
            });
        }
        let mut nets = Vec::with_capacity(raw_zone.cidrs.len());
        for value in &raw_zone.cidrs {
            match parse_cidr(value) {
                Ok(net) => nets.push(net),
                Err(source) => errors.push(PolicyError::BadCidr {
                    zone: label.clone(),
                    value: value.clone(),
                    source,
                }),
            }
        }
        if raw_zone.name.trim().is_empty() {
            continue;
        }
        if zones.contains_key(&raw_zone.name) {
            errors.push(PolicyError::DuplicateName {
                what: "zone".into(),
                name: raw_zone.name.clone(),
            });
            continue;
        }
        zones.insert(
            raw_zone.name.clone(),
            Zone::new(raw_zone.name.clone(), nets),
        );
    }
    zones
}
