//!
//! Portcullis patch: XML Encryption (xmlenc) through xmlsec's own API.
//!
//! samael's `EncryptedAssertion::decrypt` runs the ciphers itself with
//! openssl (RSA-1.5 included) and parses whatever comes out; these two
//! functions hand the work to xmlsec's xmlenc contexts instead, with
//! the transforms each step may use pinned and URI dereferencing off.
//!
//! The key transport and the content decryption are run as two separate
//! xmlsec operations, each with its key set on the context, so xmlsec
//! never resolves a key from `KeyInfo` (no `RetrievalMethod`, no key
//! chosen by the sender) and an `EncryptedKey` placed inside `KeyInfo` or
//! next to the `EncryptedData` is treated the same.
//!
use crate::crypto::xmlsec::wrapper::bindings;

use super::xmlsec_internal;
use super::{XmlDocument, XmlSecKey, XmlSecKeyFormat};

use libxml::tree::Node;
use std::ptr::{null, null_mut, NonNull};

const NS_XMLENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_XMLENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// RSA-OAEP, MGF1 with SHA-1 (XML Encryption 1.0).
pub const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
/// RSA-OAEP (XML Encryption 1.1): MGF named by an `xenc11:MGF` child,
/// MGF1 with SHA-1 when there is none.
pub const RSA_OAEP_11: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
/// RSA PKCS#1 v1.5 key transport: never accepted (padding oracle).
pub const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
/// MGF1 with SHA-1, the XML Encryption 1.1 default.
pub const MGF1_SHA1: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha1";
/// AES-128-CBC content encryption.
pub const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
/// AES-256-CBC content encryption.
pub const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
/// AES-128-GCM content encryption.
pub const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
/// AES-256-GCM content encryption.
pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";

/// Why an xmlenc operation failed. Deliberately coarse: which step failed
/// is for the log, and the variants never carry decrypted bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlEncError {
    /// The document does not parse (strictly).
    Parse,
    /// Not the expected shape (names what was wrong).
    Structure(&'static str),
    /// An algorithm outside the supported set (carries its URI).
    Unsupported(String),
    /// The key or certificate could not be loaded.
    KeyLoad,
    /// xmlsec could not set up a context (out of memory, init failure).
    Context,
    /// The EncryptedKey did not decrypt with the key given (wrong key,
    /// tampered EncryptedKey).
    KeyTransport,
    /// The content key is not the size the content algorithm needs.
    ContentKey,
    /// The EncryptedData did not decrypt (tampered ciphertext, failed
    /// GCM tag, bad padding).
    Content,
    /// Encryption failed inside xmlsec.
    Encrypt,
}

impl std::fmt::Display for XmlEncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Parse => f.write_str("document does not parse"),
            Self::Structure(what) => write!(f, "unexpected structure: {what}"),
            Self::Unsupported(uri) => write!(f, "unsupported algorithm {uri}"),
            Self::KeyLoad => f.write_str("key could not be loaded"),
            Self::Context => f.write_str("xmlsec context could not be set up"),
            Self::KeyTransport => f.write_str("EncryptedKey does not decrypt with this key"),
            Self::ContentKey => f.write_str("content key has the wrong size"),
            Self::Content => f.write_str("EncryptedData does not decrypt"),
            Self::Encrypt => f.write_str("encryption failed"),
        }
    }
}

impl std::error::Error for XmlEncError {}

/// One xmlsec encryption context, destroyed with its key.
struct EncCtx(NonNull<bindings::xmlSecEncCtx>);

impl EncCtx {
    fn new(mngr: bindings::xmlSecKeysMngrPtr) -> Result<Self, XmlEncError> {
        let ctx = unsafe { bindings::xmlSecEncCtxCreate(mngr) };
        let mut ctx = NonNull::new(ctx).map(Self).ok_or(XmlEncError::Context)?;
        // No CipherReference (or any other URI) is ever fetched.
        unsafe {
            ctx.0.as_mut().transformCtx.enabledUris = bindings::xmlSecTransformUriTypeNone;
        }
        Ok(ctx)
    }

    /// Only these transforms may appear as an EncryptionMethod.
    fn allow(&mut self, transforms: &[bindings::xmlSecTransformId]) -> Result<(), XmlEncError> {
        for id in transforms {
            let rc = unsafe {
                bindings::xmlSecPtrListAdd(
                    &mut self.0.as_mut().transformCtx.enabledTransforms,
                    *id as bindings::xmlSecPtr,
                )
            };
            if rc < 0 {
                return Err(XmlEncError::Context);
            }
        }
        Ok(())
    }

    fn set_mode(&mut self, mode: bindings::xmlEncCtxMode) {
        unsafe { self.0.as_mut().mode = mode };
    }

    /// The context owns the key from here on.
    fn set_key(&mut self, key: XmlSecKey) {
        unsafe {
            let old = std::mem::replace(&mut self.0.as_mut().encKey, XmlSecKey::leak(key));
            if !old.is_null() {
                bindings::xmlSecKeyDestroy(old);
            }
        }
    }

    fn ptr(&self) -> *mut bindings::xmlSecEncCtx {
        self.0.as_ptr()
    }
}

impl Drop for EncCtx {
    fn drop(&mut self) {
        unsafe { bindings::xmlSecEncCtxDestroy(self.0.as_ptr()) };
    }
}

fn is(node: &Node, ns: &str, local: &str) -> bool {
    node.get_name() == local && node.get_namespace().is_some_and(|n| n.get_href() == ns)
}

fn descendants(node: &Node, ns: &str, local: &str, out: &mut Vec<Node>) {
    for child in node.get_child_elements() {
        if is(&child, ns, local) {
            out.push(child.clone());
        }
        descendants(&child, ns, local, out);
    }
}

fn exactly_one(root: &Node, local: &'static str, what: &'static str) -> Result<Node, XmlEncError> {
    let mut found = Vec::new();
    if is(root, NS_XMLENC, local) {
        found.push(root.clone());
    }
    descendants(root, NS_XMLENC, local, &mut found);
    match found.len() {
        1 => Ok(found.remove(0)),
        _ => Err(XmlEncError::Structure(what)),
    }
}

fn encryption_method(node: &Node) -> Result<(Node, String), XmlEncError> {
    let mut methods = node
        .get_child_elements()
        .into_iter()
        .filter(|c| is(c, NS_XMLENC, "EncryptionMethod"));
    let (Some(method), None) = (methods.next(), methods.next()) else {
        return Err(XmlEncError::Structure("not exactly one EncryptionMethod"));
    };
    let alg = method
        .get_attribute("Algorithm")
        .ok_or(XmlEncError::Structure("EncryptionMethod without Algorithm"))?;
    Ok((method, alg))
}

/// xmlsec 1.2 implements RSA-OAEP only under its XML Encryption 1.0 name.
/// `xmlenc11#rsa-oaep` with MGF1-SHA-1 (named or by default) is the same
/// computation (same padding, same optional DigestMethod and OAEPparams),
/// so it is renamed for xmlsec; any other MGF is refused.
fn normalise_key_transport(method: &mut Node, alg: &str) -> Result<(), XmlEncError> {
    match alg {
        RSA_OAEP_MGF1P => Ok(()),
        RSA_OAEP_11 => {
            for mut child in method.get_child_elements() {
                if is(&child, NS_XMLENC11, "MGF") {
                    if child.get_attribute("Algorithm").as_deref() != Some(MGF1_SHA1) {
                        return Err(XmlEncError::Unsupported(
                            child.get_attribute("Algorithm").unwrap_or_default(),
                        ));
                    }
                    child.unlink_node();
                } else if !(is(&child, NS_DSIG, "DigestMethod")
                    || is(&child, NS_XMLENC, "OAEPparams"))
                {
                    return Err(XmlEncError::Structure("unknown child of EncryptionMethod"));
                }
            }
            method
                .set_attribute("Algorithm", RSA_OAEP_MGF1P)
                .map_err(|_| XmlEncError::Context)
        }
        other => Err(XmlEncError::Unsupported(other.to_owned())),
    }
}

fn content_algorithm(alg: &str) -> Result<(bindings::xmlSecTransformId, usize), XmlEncError> {
    unsafe {
        Ok(match alg {
            AES128_CBC => (bindings::xmlSecOpenSSLTransformAes128CbcGetKlass(), 16),
            AES256_CBC => (bindings::xmlSecOpenSSLTransformAes256CbcGetKlass(), 32),
            AES128_GCM => (bindings::xmlSecOpenSSLTransformAes128GcmGetKlass(), 16),
            AES256_GCM => (bindings::xmlSecOpenSSLTransformAes256GcmGetKlass(), 32),
            other => return Err(XmlEncError::Unsupported(other.to_owned())),
        })
    }
}

/// Bytes of an xmlsec result buffer, copied out.
unsafe fn buffer_bytes(buf: bindings::xmlSecBufferPtr) -> Vec<u8> {
    if buf.is_null() {
        return Vec::new();
    }
    let data = bindings::xmlSecBufferGetData(buf);
    let size = bindings::xmlSecBufferGetSize(buf) as usize;
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    std::slice::from_raw_parts(data, size).to_vec()
}

/// Decrypt the one `xenc:EncryptedData` of `xml` with the RSA private key
/// `private_key_pem`, through the one `xenc:EncryptedKey` of the document
/// (RSA-OAEP), and return the plaintext exactly as xmlsec produced it.
/// What the plaintext is (and whether it may be trusted) is the caller's
/// to judge: nothing here parses it.
pub fn decrypt(xml: &str, private_key_pem: &[u8]) -> Result<Vec<u8>, XmlEncError> {
    xmlsec_internal::guarantee_xmlsec_init().map_err(|_| XmlEncError::Context)?;
    let doc = crate::crypto::xmlsec::parse_strict(xml).map_err(|_| XmlEncError::Parse)?;
    let root = doc.get_root_element().ok_or(XmlEncError::Parse)?;
    let enc_data = exactly_one(&root, "EncryptedData", "not exactly one EncryptedData")?;
    let enc_key = exactly_one(&root, "EncryptedKey", "not exactly one EncryptedKey")?;
    let (_, data_alg) = encryption_method(&enc_data)?;
    let (content_transform, key_len) = content_algorithm(&data_alg)?;
    let (mut key_method, key_alg) = encryption_method(&enc_key)?;
    normalise_key_transport(&mut key_method, &key_alg)?;

    let rsa = XmlSecKey::from_memory(private_key_pem, XmlSecKeyFormat::Pem)
        .map_err(|_| XmlEncError::KeyLoad)?;
    let mut content_key = {
        let mut ctx = EncCtx::new(null_mut())?;
        ctx.set_mode(bindings::xmlEncCtxMode_xmlEncCtxModeEncryptedKey);
        ctx.allow(&[unsafe { bindings::xmlSecOpenSSLTransformRsaOaepGetKlass() }])?;
        ctx.set_key(rsa);
        let buf = unsafe {
            bindings::xmlSecEncCtxDecryptToBuffer(
                ctx.ptr(),
                enc_key.node_ptr() as *mut bindings::xmlNode,
            )
        };
        if buf.is_null() {
            return Err(XmlEncError::KeyTransport);
        }
        unsafe { buffer_bytes(buf) }
    };
    // xmlsec would truncate a longer key to the cipher's size; a key of
    // the wrong size means the sender and we disagree on the algorithm.
    if content_key.len() != key_len {
        content_key.fill(0);
        return Err(XmlEncError::ContentKey);
    }
    let aes = unsafe {
        bindings::xmlSecKeyReadMemory(
            bindings::xmlSecOpenSSLKeyDataAesGetKlass(),
            content_key.as_ptr(),
            content_key.len() as _,
        )
    };
    content_key.fill(0);
    if aes.is_null() {
        return Err(XmlEncError::ContentKey);
    }
    let aes = unsafe { XmlSecKey::from_ptr(aes) };
    let mut ctx = EncCtx::new(null_mut())?;
    ctx.set_mode(bindings::xmlEncCtxMode_xmlEncCtxModeEncryptedData);
    ctx.allow(&[content_transform])?;
    ctx.set_key(aes);
    let buf = unsafe {
        bindings::xmlSecEncCtxDecryptToBuffer(
            ctx.ptr(),
            enc_data.node_ptr() as *mut bindings::xmlNode,
        )
    };
    if buf.is_null() {
        return Err(XmlEncError::Content);
    }
    Ok(unsafe { buffer_bytes(buf) })
}

/// The content ciphers [`encrypt_root`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    /// AES-128-CBC (XML Encryption 1.0).
    Aes128Cbc,
    /// AES-256-CBC (XML Encryption 1.0).
    Aes256Cbc,
    /// AES-128-GCM (XML Encryption 1.1).
    Aes128Gcm,
    /// AES-256-GCM (XML Encryption 1.1).
    Aes256Gcm,
}

impl ContentCipher {
    fn transform_and_bits(self) -> (bindings::xmlSecTransformId, u32) {
        unsafe {
            match self {
                Self::Aes128Cbc => (bindings::xmlSecOpenSSLTransformAes128CbcGetKlass(), 128),
                Self::Aes256Cbc => (bindings::xmlSecOpenSSLTransformAes256CbcGetKlass(), 256),
                Self::Aes128Gcm => (bindings::xmlSecOpenSSLTransformAes128GcmGetKlass(), 128),
                Self::Aes256Gcm => (bindings::xmlSecOpenSSLTransformAes256GcmGetKlass(), 256),
            }
        }
    }
}

/// A keys manager holding one key, destroyed with it.
struct KeysMngr(NonNull<bindings::xmlSecKeysMngr>);

impl KeysMngr {
    fn with_key(key: XmlSecKey) -> Result<Self, XmlEncError> {
        let mngr = unsafe { bindings::xmlSecKeysMngrCreate() };
        let mngr = NonNull::new(mngr).map(Self).ok_or(XmlEncError::Context)?;
        if unsafe { bindings::xmlSecOpenSSLAppDefaultKeysMngrInit(mngr.0.as_ptr()) } < 0 {
            return Err(XmlEncError::Context);
        }
        let key = unsafe { XmlSecKey::leak(key) };
        if unsafe { bindings::xmlSecOpenSSLAppDefaultKeysMngrAdoptKey(mngr.0.as_ptr(), key) } < 0 {
            unsafe { bindings::xmlSecKeyDestroy(key) };
            return Err(XmlEncError::Context);
        }
        Ok(mngr)
    }
}

impl Drop for KeysMngr {
    fn drop(&mut self) {
        unsafe { bindings::xmlSecKeysMngrDestroy(self.0.as_ptr()) };
    }
}

/// Encrypt the root element of `xml` for the holder of the certificate
/// `recipient_cert_der`: `content` under a fresh key xmlsec generates,
/// that key transported with RSA-OAEP (MGF1-SHA-1) inside the
/// EncryptedData's KeyInfo. Returns the `xenc:EncryptedData` element
/// (no XML declaration).
pub fn encrypt_root(
    xml: &str,
    recipient_cert_der: &[u8],
    content: ContentCipher,
) -> Result<String, XmlEncError> {
    let (content_transform, content_bits) = content.transform_and_bits();
    xmlsec_internal::guarantee_xmlsec_init().map_err(|_| XmlEncError::Context)?;
    let doc: XmlDocument =
        crate::crypto::xmlsec::parse_strict(xml).map_err(|_| XmlEncError::Parse)?;
    let root = doc.get_root_element().ok_or(XmlEncError::Parse)?;
    let recipient = XmlSecKey::from_memory(recipient_cert_der, XmlSecKeyFormat::CertDer)
        .map_err(|_| XmlEncError::KeyLoad)?;
    let mngr = KeysMngr::with_key(recipient)?;
    unsafe {
        let tmpl = bindings::xmlSecTmplEncDataCreate(
            doc.doc_ptr() as *mut bindings::xmlDoc,
            content_transform,
            null(),
            bindings::xmlSecTypeEncElement.as_ptr(),
            null(),
            null(),
        );
        if tmpl.is_null() {
            return Err(XmlEncError::Encrypt);
        }
        // Not yet in the document: freed here if the template cannot be
        // completed.
        let free_tmpl = |e| {
            libxml::bindings::xmlFreeNode(tmpl as *mut libxml::bindings::xmlNode);
            Err(e)
        };
        if bindings::xmlSecTmplEncDataEnsureCipherValue(tmpl).is_null() {
            return free_tmpl(XmlEncError::Encrypt);
        }
        let key_info = bindings::xmlSecTmplEncDataEnsureKeyInfo(tmpl, null());
        if key_info.is_null() {
            return free_tmpl(XmlEncError::Encrypt);
        }
        let enc_key = bindings::xmlSecTmplKeyInfoAddEncryptedKey(
            key_info,
            bindings::xmlSecOpenSSLTransformRsaOaepGetKlass(),
            null(),
            null(),
            null(),
        );
        if enc_key.is_null() || bindings::xmlSecTmplEncDataEnsureCipherValue(enc_key).is_null() {
            return free_tmpl(XmlEncError::Encrypt);
        }
        let session = bindings::xmlSecKeyGenerate(
            bindings::xmlSecOpenSSLKeyDataAesGetKlass(),
            content_bits,
            bindings::xmlSecKeyDataTypeSession,
        );
        if session.is_null() {
            return free_tmpl(XmlEncError::Encrypt);
        }
        let mut ctx = match EncCtx::new(mngr.0.as_ptr()) {
            Ok(ctx) => ctx,
            Err(e) => {
                bindings::xmlSecKeyDestroy(session);
                return free_tmpl(e);
            }
        };
        ctx.set_key(XmlSecKey::from_ptr(session));
        let rc = bindings::xmlSecEncCtxXmlEncrypt(
            ctx.ptr(),
            tmpl,
            root.node_ptr() as *mut bindings::xmlNode,
        );
        if rc < 0 {
            // Whether xmlsec already put the template into the document
            // is not reported; leaking it on this path is safe, freeing
            // it might not be.
            return Err(XmlEncError::Encrypt);
        }
        drop(ctx);
    }
    let root = doc.get_root_element().ok_or(XmlEncError::Encrypt)?;
    if !is(&root, NS_XMLENC, "EncryptedData") {
        return Err(XmlEncError::Encrypt);
    }
    Ok(doc.node_to_string(&root))
}
