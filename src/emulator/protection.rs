//! Protected task configuration, as the .NET SDK sent it (`TaskOptions.ProtectedConfiguration`):
//! the emulator's protection key (an X.509 certificate over an RSA key, made on first use and
//! kept in the data folder), `GetProtectionKeyId`, `GetProtectionKey`, `RebindContentKey`, the
//! `ContentKeys` set, and the decryption of a task's configuration.
//!
//! The SDK encrypts the configuration with AES-256-CBC (PKCS#7) under a fresh key and IV, wraps
//! the key to the certificate with RSA-OAEP (SHA-1), and sends the wrapped key as a ContentKey
//! (`ContentKeyType` 2, `ProtectionKeyType` 0, `Checksum` = the first 8 bytes of the key's
//! AES-ECB encryption of the key id's GUID bytes, .NET order). The task names the key
//! (`EncryptionKeyId`), the scheme (`ConfigurationEncryption`, version `1.0`) and the IV.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use aes::cipher::{BlockDecryptMut, BlockEncrypt, KeyInit, KeyIvInit};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::Digest;

use super::odata::{ApiError, Body, Format, SetInfo};
use super::{no_content, now, to_value, Ctx};

pub const INFO: SetInfo = SetInfo {
    name: "ContentKeys",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.ContentKey",
    properties: &[
        "Id",
        "Created",
        "LastModified",
        "ContentKeyType",
        "EncryptedContentKey",
        "Name",
        "ProtectionKeyId",
        "ProtectionKeyType",
        "Checksum",
        "AuthorizationPolicyId",
        "TrackIdentifiers",
    ],
    navigation: &[],
};

/// `ContentKeyType` of a key that protects a task's configuration.
const CONFIGURATION_ENCRYPTION: i32 = 2;
/// The only scheme and version the SDK wrote.
pub const SCHEME: &str = "ConfigurationEncryption";
pub const VERSION: &str = "1.0";

/// A content key as the service kept it (the clear key is never stored: only its wrapping).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContentKey {
    pub id: String,
    #[serde(with = "crate::ams::model::date")]
    pub created: time::OffsetDateTime,
    #[serde(with = "crate::ams::model::date")]
    pub last_modified: time::OffsetDateTime,
    pub content_key_type: i32,
    pub encrypted_content_key: String,
    pub name: Option<String>,
    pub protection_key_id: String,
    pub protection_key_type: i32,
    pub checksum: Option<String>,
    pub authorization_policy_id: Option<String>,
    pub track_identifiers: Option<String>,
}

/// The emulator's protection key: an RSA key and its self-signed certificate.
pub struct ProtectionKey {
    key: rsa::RsaPrivateKey,
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// Its SHA-1 thumbprint in upper-case hex, as .NET's `X509Certificate2.Thumbprint`.
    pub thumbprint: String,
}

/// The protection key of a data folder, made (2048-bit RSA) and written there on first use.
pub struct Keys {
    dir: PathBuf,
    key: OnceLock<Arc<ProtectionKey>>,
    making: std::sync::Mutex<()>,
}

impl Keys {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            dir: data_dir.to_path_buf(),
            key: OnceLock::new(),
            making: std::sync::Mutex::new(()),
        }
    }

    /// The key, read or made (blocking: call from a blocking task).
    fn get(&self) -> Result<Arc<ProtectionKey>, ApiError> {
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        let _one = self.making.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        let k = Arc::new(self.load_or_make().map_err(|e| {
            ApiError::internal(format!("the protection key cannot be made or read: {e}"))
        })?);
        let _ = self.key.set(k.clone());
        Ok(k)
    }

    fn load_or_make(&self) -> anyhow::Result<ProtectionKey> {
        let key_file = self.dir.join("protection-key.der");
        let cert_file = self.dir.join("protection-cert.der");
        let (key, certificate) = match (std::fs::read(&key_file), std::fs::read(&cert_file)) {
            (Ok(k), Ok(c)) => (rsa::RsaPrivateKey::from_pkcs8_der(&k)?, c),
            _ => {
                let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
                let der = key.to_pkcs8_der()?;
                let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)?;
                let pair =
                    rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)?;
                let mut params =
                    rcgen::CertificateParams::new(vec!["amsplay-protection-key".into()])?;
                params.not_after = rcgen::date_time_ymd(2100, 1, 1);
                let cert = params.self_signed(&pair)?;
                write_private(&key_file, der.as_bytes())?;
                write_private(&cert_file, cert.der())?;
                (key, cert.der().to_vec())
            }
        };
        let thumbprint = hex::encode_upper(sha1::Sha1::digest(&certificate));
        Ok(ProtectionKey {
            key,
            certificate,
            thumbprint,
        })
    }

    async fn key(&self) -> Result<Arc<ProtectionKey>, ApiError> {
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        tokio::task::block_in_place(|| self.get())
    }
}

/// Writes a secret readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// `GET GetProtectionKeyId?contentKeyType=2`: the thumbprint of the certificate to wrap keys
/// with.
pub async fn get_protection_key_id(
    ctx: &Ctx<'_>,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let kind = super::odata::Query::parse(query)?.required_param(
        "contentKeyType",
        "GetProtectionKeyId needs ?contentKeyType=2 (configuration encryption)",
    )?;
    if kind.trim() != CONFIGURATION_ENCRYPTION.to_string() {
        return Err(ApiError::bad_request(format!(
            "contentKeyType {kind} is not emulated; only 2 (configuration encryption) is"
        )));
    }
    let k = ctx.st.protection.key().await?;
    Ok(ctx.value(
        "GetProtectionKeyId",
        "Edm.String",
        k.thumbprint.clone().into(),
    ))
}

/// `GET GetProtectionKey?protectionKeyId='THUMBPRINT'`: the certificate, base64 DER.
pub async fn get_protection_key(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response, ApiError> {
    let id = super::odata::Query::parse(query)?.required_param(
        "protectionKeyId",
        "GetProtectionKey needs ?protectionKeyId='<thumbprint>'",
    )?;
    let k = ctx.st.protection.key().await?;
    if !id.trim().eq_ignore_ascii_case(&k.thumbprint) {
        return Err(ApiError::not_found(format!(
            "no protection key '{id}'; GetProtectionKeyId?contentKeyType=2 names the current one"
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&k.certificate);
    Ok(ctx.value("GetProtectionKey", "Edm.String", b64.into()))
}

/// `GET RebindContentKey?id='nb:kid:…'&x509Certificate=''`: the clear key, base64 (with no
/// certificate to wrap it to, as the SDK asked when it showed a clear configuration).
pub async fn rebind_content_key(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response, ApiError> {
    let q = super::odata::Query::parse(query)?;
    let id = q.required_param("id", "RebindContentKey needs ?id='nb:kid:UUID:…'")?;
    if q.param("x509Certificate")
        .is_some_and(|c| !c.trim().is_empty())
    {
        return Err(ApiError::bad_request(
            "RebindContentKey to another certificate is not emulated; send x509Certificate=''",
        ));
    }
    let key = clear_key(ctx.st, &id).await?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    Ok(ctx.value("RebindContentKey", "Edm.String", b64.into()))
}

/// The 32-byte key of content key `id`, unwrapped with the protection key.
async fn clear_key(st: &super::AppState, id: &str) -> Result<Vec<u8>, ApiError> {
    let v = st
        .db
        .get(INFO.name, id)?
        .ok_or_else(|| ApiError::not_found(format!("ContentKey '{id}' was not found")))?;
    let ck: ContentKey =
        serde_json::from_value(v).map_err(|e| ApiError::internal(e.to_string()))?;
    unwrap_key(&*st.protection.key().await?, &ck)
}

fn unwrap_key(k: &ProtectionKey, ck: &ContentKey) -> Result<Vec<u8>, ApiError> {
    if !ck.protection_key_id.eq_ignore_ascii_case(&k.thumbprint) {
        return Err(ApiError::bad_request(format!(
            "ContentKey '{}' is wrapped to protection key '{}', not to this emulator's ('{}')",
            ck.id, ck.protection_key_id, k.thumbprint
        )));
    }
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(ck.encrypted_content_key.trim())
        .map_err(|_| ApiError::bad_request("field 'EncryptedContentKey' is not base64"))?;
    k.key
        .decrypt(rsa::Oaep::new::<sha1::Sha1>(), &wrapped)
        .map_err(|_| {
            ApiError::bad_request(
                "field 'EncryptedContentKey' does not unwrap with the protection key (RSA-OAEP, SHA-1)",
            )
        })
}

/// The checksum the SDK sent with a key: the first 8 bytes of AES-ECB(key, GUID bytes in
/// .NET's order), base64.
pub fn checksum(key: &[u8], id: &str) -> Option<String> {
    let guid = crate::ams::model::IdKind::ContentKey.parse(id)?;
    let cipher = aes::Aes256::new_from_slice(key).ok()?;
    let mut block = aes::Block::clone_from_slice(&guid.to_bytes_le());
    cipher.encrypt_block(&mut block);
    Some(base64::engine::general_purpose::STANDARD.encode(&block[..8]))
}

/// A protected task's configuration in the clear (the worker's and the submission's view).
pub async fn clear_configuration(
    st: &super::AppState,
    key_id: &str,
    iv: &str,
    ciphertext: &str,
) -> Result<String, ApiError> {
    let key = clear_key(st, key_id).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let iv = b64
        .decode(iv.trim())
        .ok()
        .filter(|iv| iv.len() == 16)
        .ok_or_else(|| {
            ApiError::bad_request("field 'InitializationVector' is not 16 bytes of base64")
        })?;
    let data = b64
        .decode(ciphertext.trim())
        .map_err(|_| ApiError::bad_request("a protected 'Configuration' must be base64"))?;
    let clear = cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
        .map_err(|_| ApiError::bad_request("the content key is not an AES-256 key"))?
        .decrypt_padded_vec_mut::<aes::cipher::block_padding::Pkcs7>(&data)
        .map_err(|_| {
            ApiError::bad_request(
                "the protected 'Configuration' does not decrypt with its content key and IV",
            )
        })?;
    String::from_utf8(clear).map_err(|_| {
        ApiError::bad_request("the protected 'Configuration' is not UTF-8 once decrypted")
    })
}

/// `ContentKeys`: POST (a key wrapped to this emulator's protection key, its checksum
/// checked), GET, DELETE.
pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav) {
        ("GET", None, None) => ctx.list(&INFO),
        ("GET", Some(id), None) => ctx.get::<ContentKey>(&INFO, &id),
        ("POST", None, None) => create(ctx).await,
        ("DELETE", Some(id), None) => {
            let _: ContentKey = ctx.load(&INFO, &id)?;
            ctx.st.db.delete(INFO.name, &id)?;
            Ok(no_content())
        }
        ("GET", Some(_), Some(nav)) => Err(ApiError::not_found(format!(
            "ContentKey has no navigation property '{nav}'"
        ))),
        (m, _, _) => Err(ApiError::not_allowed(m, "ContentKeys")),
    }
}

/// Links from assets to content keys (`Assets('…')/$links/ContentKeys`), one record per link
/// with the asset as its parent.
pub const ASSET_LINKS: &str = "AssetContentKeys";

/// `Assets('id')/$links/ContentKeys[('kid')]`: POST links a key (body `{"uri": …}`, or
/// `<uri>…</uri>` as the SDK wrote it), GET lists the links, DELETE unlinks one.
pub fn asset_links(
    ctx: &Ctx<'_>,
    method: &str,
    asset_id: &str,
    target: &str,
) -> Result<Response, ApiError> {
    let _: crate::ams::model::Asset = ctx.load(&super::assets::INFO, asset_id)?;
    let (set, key, _) = super::odata::parse_resource(target)?;
    if set != INFO.name {
        return Err(ApiError::bad_request(format!(
            "$links/{set} is not emulated; an asset links to ContentKeys only"
        )));
    }
    match (method, key) {
        ("POST", None) => {
            let body = Body::parse(ctx.body)?;
            let uri = body.required_str("uri")?;
            // `https://…/api/ContentKeys('…')`, read as the routes read a path.
            let below = uri.rsplit_once("/api/").map_or(uri.as_str(), |(_, p)| p);
            let kid = match super::odata::parse_resource(below)? {
                (set, Some(kid), None) if set == INFO.name => kid,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "field 'uri': '{uri}' is not a ContentKeys('…') URI"
                    )))
                }
            };
            let _: ContentKey = ctx.load(&INFO, &kid)?;
            if ctx
                .st
                .db
                .get(ASSET_LINKS, &link_id(asset_id, &kid))?
                .is_none()
            {
                let v = serde_json::json!({"AssetId": asset_id, "ContentKeyId": kid});
                ctx.st
                    .db
                    .insert(ASSET_LINKS, &link_id(asset_id, &kid), Some(asset_id), &v)?;
            }
            Ok(no_content())
        }
        ("GET", None) => {
            let uris: Vec<Value> = linked(ctx.st, asset_id)?
                .iter()
                .map(|k| serde_json::json!({"uri": crate::ams::odata::entity_uri(&ctx.api, INFO.name, &k.id)}))
                .collect();
            let body = match ctx.fmt {
                Format::Minimal => {
                    serde_json::json!({"value": uris.iter().map(|u| serde_json::json!({"url": u["uri"]})).collect::<Vec<_>>()})
                }
                _ => serde_json::json!({"d": {"results": uris}}),
            };
            Ok(super::odata::respond(ctx.fmt, StatusCode::OK, body))
        }
        ("DELETE", Some(kid)) => {
            if !ctx.st.db.delete(ASSET_LINKS, &link_id(asset_id, &kid))? {
                return Err(ApiError::not_found(format!(
                    "Asset '{asset_id}' has no link to ContentKey '{kid}'"
                )));
            }
            Ok(no_content())
        }
        (m, _) => Err(ApiError::not_allowed(m, "$links/ContentKeys")),
    }
}

fn link_id(asset_id: &str, kid: &str) -> String {
    format!("{asset_id}|{kid}")
}

/// The content keys linked to an asset.
pub fn linked(st: &super::AppState, asset_id: &str) -> Result<Vec<ContentKey>, ApiError> {
    let mut keys = Vec::new();
    for l in st.db.list(ASSET_LINKS, Some(asset_id))? {
        let kid = l["ContentKeyId"].as_str().unwrap_or_default();
        if let Some(v) = st.db.get(INFO.name, kid)? {
            keys.push(serde_json::from_value(v).map_err(|e| ApiError::internal(e.to_string()))?);
        }
    }
    Ok(keys)
}

async fn create(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let body = Body::parse(ctx.body)?;
    body.only_known(&INFO)?;
    let id = match body.str("Id")?.filter(|s| !s.is_empty()) {
        Some(id) => {
            crate::ams::model::IdKind::ContentKey
                .parse(&id)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "field 'Id': '{id}' is not a content key id (nb:kid:UUID:…)"
                    ))
                })?;
            id
        }
        None => crate::ams::model::IdKind::ContentKey.new_id(),
    };
    let t = now();
    let ck = ContentKey {
        id: id.clone(),
        created: t,
        last_modified: t,
        content_key_type: body.int("ContentKeyType")?.unwrap_or(0),
        encrypted_content_key: body.required_str("EncryptedContentKey")?,
        name: body.str("Name")?,
        protection_key_id: body.required_str("ProtectionKeyId")?,
        protection_key_type: body.int("ProtectionKeyType")?.unwrap_or(0),
        checksum: body.str("Checksum")?,
        authorization_policy_id: body.str("AuthorizationPolicyId")?,
        track_identifiers: body.str("TrackIdentifiers")?,
    };
    if ck.content_key_type != CONFIGURATION_ENCRYPTION {
        return Err(ApiError::bad_request(format!(
            "field 'ContentKeyType': {} is not emulated; only 2 (configuration encryption) is",
            ck.content_key_type
        )));
    }
    let clear = unwrap_key(&*ctx.st.protection.key().await?, &ck)?;
    if clear.len() != 32 {
        return Err(ApiError::bad_request(format!(
            "field 'EncryptedContentKey' holds a {}-byte key; configuration encryption uses 32",
            clear.len()
        )));
    }
    if let Some(sent) = &ck.checksum {
        if checksum(&clear, &id).as_deref() != Some(sent.trim()) {
            return Err(ApiError::bad_request(
                "field 'Checksum' does not match the key (the first 8 bytes of AES-ECB of the key id's GUID)",
            ));
        }
    }
    let v: Value = to_value(&ck)?;
    ctx.st.db.insert(INFO.name, &id, None, &v)?;
    Ok(ctx.entity(&INFO, StatusCode::CREATED, v))
}
