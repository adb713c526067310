//! Tokens (ACS and Azure AD), their expiry, and the global root's 301 as the REST reference describes them.

use reqwest::StatusCode;
use serde_json::Value;

use super::{odata_error, Raw};
use crate::harness::Media;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_signed_and_expire() {
    let m = Media::start(&["--token-lifetime", "1"]).await;
    let http = reqwest::Client::new();
    let form = |secret: &str, scope: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", m.account.clone()),
            ("client_secret", secret.to_string()),
            ("scope", scope.to_string()),
        ]
    };
    let r = http
        .post(m.url("/v2/OAuth2-13"))
        .form(&form(&m.key, "urn:WindowsAzureMediaServices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert!(t["expires_in"].is_string(), "expires_in is a string: {t}");
    assert_eq!(t["scope"], "urn:WindowsAzureMediaServices");
    let token = t["access_token"].as_str().unwrap().to_string();

    let r = http
        .post(m.url("/v2/OAuth2-13"))
        .form(&form("wrong", "urn:WindowsAzureMediaServices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");

    let aad = http
        .post(m.url("/mytenant.onmicrosoft.com/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &m.account),
            ("client_secret", &m.key),
            ("resource", "https://rest.media.azure.net"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(aad.status(), 200);
    assert_eq!(aad.json::<Value>().await.unwrap()["token_type"], "Bearer");

    let assets = m.url("/api/Assets?api-version=2.19");
    let r = http.get(&assets).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(odata_error(&r.json().await.unwrap(), "odata.error").contains("Authorization"));
    let r = http
        .get(&assets)
        .bearer_auth("forged&HMACSHA256=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(&assets).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = http.get(&assets).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401, "an expired token is refused");
    assert!(odata_error(&r.json().await.unwrap(), "odata.error").contains("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_root_redirects_and_clients_reissue_the_request() {
    let m = Media::start(&[]).await;
    let raw = Raw::new(&m).await;
    for path in ["/", "/global/api/", "/global/api/Assets"] {
        let (s, h, _) = raw.send("GET", path, None, false).await;
        assert_eq!(s, StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(h["location"], m.url("/api/").as_str(), "{path}");
    }
    // Our client, pointed at the global root, follows the 301 with the same verb and body.
    let client = m.client("/global/api/");
    let asset = client.create_asset("through the redirect").await.unwrap();
    assert_eq!(asset.name.as_deref(), Some("through the redirect"));
    assert_eq!(client.asset(&asset.id).await.unwrap().id, asset.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_azure_ad_tokens() {
    let m = Media::start(&[]).await;
    let client = amsplay::ams::client::MediaClient::new(amsplay::config::MediaAccount {
        account: m.account.clone(),
        key: m.key.clone(),
        api: url::Url::parse(&m.url("/api/")).unwrap(),
        token_endpoint: url::Url::parse(&m.url("/contoso.onmicrosoft.com/oauth2/token")).unwrap(),
        aad: true,
    });
    let a = client.create_asset("aad").await.unwrap();
    assert_eq!(client.assets().await.unwrap().len(), 1);
    client.delete_asset(&a.id).await.unwrap();
    let err = client.asset(&a.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    let wrong = amsplay::ams::client::MediaClient::new(amsplay::config::MediaAccount {
        account: m.account.clone(),
        key: "d3Jvbmc=".into(),
        api: url::Url::parse(&m.url("/api/")).unwrap(),
        token_endpoint: url::Url::parse(&m.url("/v2/OAuth2-13")).unwrap(),
        aad: false,
    });
    let err = wrong.assets().await.unwrap_err();
    assert_eq!(err.kind(), "auth", "{err}");
}

/// Clients of the era sent `…&client_secret=KEY &scope=…`: the key with a space after it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_with_spaces_around_it_is_accepted() {
    let m = Media::start(&[]).await;
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={} &scope=urn%3aWindowsAzureMediaServices",
        m.account,
        amsplay::ams::auth::urlencode(&m.key)
    );
    let r = reqwest::Client::new()
        .post(m.url("/v2/OAuth2-13"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

/// Azure AD style tokens are JWTs as AAD issued them (aud the Media Services resource, exp,
/// appid), they work on the API, and an application id given with --aad-client-id stands for
/// the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_ad_tokens_are_jwts_and_application_ids_work() {
    use base64::Engine;
    let app = "0c2b6f1a-7d4e-4b0e-9a51-3c1f2d6e8b90";
    let m = Media::start(&["--aad-client-id", app]).await;
    let http = reqwest::Client::new();
    let token = |client_id: String| {
        let http = http.clone();
        let url = m.url("/contoso.onmicrosoft.com/oauth2/token");
        let key = m.key.clone();
        async move {
            http.post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", key.as_str()),
                    ("resource", "https://rest.media.azure.net"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for client_id in [m.account.clone(), app.to_uppercase()] {
        let r = token(client_id.clone()).await;
        assert_eq!(r.status(), 200, "{client_id}");
        let v: Value = r.json().await.unwrap();
        let jwt = v["access_token"].as_str().unwrap().to_string();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], "https://rest.media.azure.net");
        assert_eq!(
            claims["iss"],
            "https://sts.windows.net/contoso.onmicrosoft.com/"
        );
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
        assert_eq!(claims["appid"], client_id.as_str());
        let api = http
            .get(m.url("/api/Assets"))
            .bearer_auth(&jwt)
            .header("x-ms-version", "2.19")
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200, "{client_id}");
        // A forged payload fails the signature.
        let forged = format!("{}.{}.{}", parts[0], parts[1].replace('e', "f"), parts[2]);
        let api = http
            .get(m.url("/api/Assets"))
            .bearer_auth(&forged)
            .header("x-ms-version", "2.19")
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 401);
    }
    let r = token("11111111-2222-3333-4444-555555555555".into()).await;
    assert_eq!(r.status(), 400, "an unknown client_id is an invalid_client");
}
