//! Access tokens as Media Services v2 issued them, signed and checked here.
//!
//! ACS style (`POST /v2/OAuth2-13`, `scope=urn:WindowsAzureMediaServices`) and Azure AD style
//! (`POST /{tenant}/oauth2/token`, `resource=https://rest.media.azure.net`) both hand out the
//! same kind of token: an SWT-like string `…nameidentifier=ACCOUNT&Audience=…&ExpiresOn=EPOCH&
//! Issuer=…&HMACSHA256=SIG`, the signature an HMAC-SHA256 keyed by the account key.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// ACS scope of Media Services.
pub const ACS_SCOPE: &str = "urn:WindowsAzureMediaServices";
/// Azure AD resource of Media Services.
pub const AAD_RESOURCE: &str = "https://rest.media.azure.net";
/// ACS token lifetime, as the service gave it.
pub const ACS_LIFETIME_SECS: i64 = 21600;
/// Azure AD token lifetime.
pub const AAD_LIFETIME_SECS: i64 = 3599;

const NAME_ID: &str =
    "http%3a%2f%2fschemas.xmlsoap.org%2fws%2f2005%2f05%2fidentity%2fclaims%2fnameidentifier";
const ISSUER: &str = "amsplay";

/// The token endpoint's answer. `expires_in` is a string, as ACS sent it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token_type: String,
    pub access_token: String,
    pub expires_in: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
}

/// The error body of a refused token request (OAuth 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenError {
    pub error: String,
    pub error_description: String,
}

fn mac(key: &str, text: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(format!("amsplay-token:{key}").as_bytes())
        .expect("HMAC takes any key length");
    m.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// Signs a token for `account`, valid until `expires_on` (Unix seconds).
pub fn sign(account: &str, key: &str, audience: &str, expires_on: i64) -> String {
    let body = format!(
        "{NAME_ID}={}&Audience={}&ExpiresOn={expires_on}&Issuer={ISSUER}",
        urlencode(account),
        urlencode(audience)
    );
    let sig = mac(key, &body);
    format!("{body}&HMACSHA256={}", urlencode(&sig))
}

/// Signs an Azure AD style access token: a JWT (HS256 with the account's key) whose `aud` is
/// the Media Services resource, as AAD issued them, so clients that read `exp` from it can.
pub fn sign_jwt(
    account: &str,
    key: &str,
    tenant: &str,
    app_id: &str,
    issued_at: i64,
    expires_on: i64,
) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let header = serde_json::json!({"typ": "JWT", "alg": "HS256"});
    let claims = serde_json::json!({
        "aud": AAD_RESOURCE,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_on,
        "appid": app_id,
        "sub": account,
        "oid": account,
    });
    let signed = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = jwt_mac(key, &signed);
    format!("{signed}.{sig}")
}

fn jwt_mac(key: &str, text: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let mut m = Hmac::<Sha256>::new_from_slice(format!("amsplay-token:{key}").as_bytes())
        .expect("HMAC takes any key length");
    m.update(text.as_bytes());
    B64.encode(m.finalize().into_bytes())
}

fn verify_jwt(token: &str, account: &str, key: &str, now: i64) -> Result<(), TokenProblem> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let (signed, sig) = token.rsplit_once('.').ok_or(TokenProblem::Malformed)?;
    if !constant_eq(sig.as_bytes(), jwt_mac(key, signed).as_bytes()) {
        return Err(TokenProblem::BadSignature);
    }
    let (_, payload) = signed.split_once('.').ok_or(TokenProblem::Malformed)?;
    let claims: serde_json::Value = B64
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenProblem::Malformed)?;
    if claims["sub"].as_str() != Some(account) {
        return Err(TokenProblem::WrongAccount);
    }
    if claims["aud"].as_str().map(|a| a.trim_end_matches('/')) != Some(AAD_RESOURCE) {
        return Err(TokenProblem::WrongAccount);
    }
    match claims["exp"].as_i64() {
        Some(exp) if exp > now => Ok(()),
        Some(_) => Err(TokenProblem::Expired),
        None => Err(TokenProblem::Malformed),
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token's signature is not valid for this account")]
    BadSignature,
    #[error("the access token was issued for another account")]
    WrongAccount,
    #[error("the access token expired; request a new one")]
    Expired,
}

/// Checks a token's signature, account and expiry.
pub fn verify(token: &str, account: &str, key: &str, now: i64) -> Result<(), TokenProblem> {
    // A JWT (Azure AD style): three base64url parts.
    if token.matches('.').count() == 2 && !token.contains('&') {
        return verify_jwt(token, account, key, now);
    }
    let (body, sig) = token
        .rsplit_once("&HMACSHA256=")
        .ok_or(TokenProblem::Malformed)?;
    let sig = urldecode(sig);
    if !constant_eq(sig.as_bytes(), mac(key, body).as_bytes()) {
        return Err(TokenProblem::BadSignature);
    }
    let field = |name: &str| {
        body.split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    };
    let who = field(NAME_ID)
        .map(urldecode)
        .ok_or(TokenProblem::Malformed)?;
    if who != account {
        return Err(TokenProblem::WrongAccount);
    }
    let expires: i64 = field("ExpiresOn")
        .and_then(|v| v.parse().ok())
        .ok_or(TokenProblem::Malformed)?;
    if expires <= now {
        return Err(TokenProblem::Expired);
    }
    Ok(())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Percent-encoding as .NET's HttpUtility.UrlEncode does it (lowercase hex).
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// Percent-decoding (also turns `+` into a space, as form bodies mean it).
pub fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampering_fails() {
        let t = sign("amsacct", "a2V5", ACS_SCOPE, 2_000_000_000);
        assert_eq!(verify(&t, "amsacct", "a2V5", 1_000), Ok(()));
        assert_eq!(
            verify(&t, "amsacct", "b3RoZXI=", 1_000),
            Err(TokenProblem::BadSignature)
        );
        assert_eq!(
            verify(&t, "other", "a2V5", 1_000),
            Err(TokenProblem::WrongAccount)
        );
        assert_eq!(
            verify(&t, "amsacct", "a2V5", 2_000_000_001),
            Err(TokenProblem::Expired)
        );
        let forged = t.replace("ExpiresOn=2000000000", "ExpiresOn=2000000009");
        assert_eq!(
            verify(&forged, "amsacct", "a2V5", 1_000),
            Err(TokenProblem::BadSignature)
        );
        assert_eq!(
            verify("junk", "amsacct", "a2V5", 1_000),
            Err(TokenProblem::Malformed)
        );
    }

    #[test]
    fn url_coding_round_trips() {
        let s = "a b+c/=%:é";
        assert_eq!(urldecode(&urlencode(s)), s);
        assert_eq!(urldecode("nb%3Acid%3AUUID%3Aabc"), "nb:cid:UUID:abc");
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn tokens_and_escapes_never_panic(token in "\\PC{0,120}", text in "\\PC{0,60}") {
            let _ = verify(&token, "acct", "a2V5", 0);
            proptest::prop_assert_eq!(urldecode(&urlencode(&text)), text.clone());
            let _ = urldecode(&token);
        }
    }
}
