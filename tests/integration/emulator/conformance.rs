//! Conformance with the .NET SDK's own wire, replayed against the real emulator over HTTP:
//! Atom entries in, Atom entries and feeds out, as its recorded exchanges (IngestLog.txt in
//! Azure/azure-sdk-for-media-services) show them; `job.Submit()`'s `$batch` as its client
//! library (WCF Data Services 5.6.4) writes it; the walkthrough end to end as the SDK sent it
//! (upload through a SAS locator, CreateFileInfos, a protected configuration, polling, an
//! origin locator with an Id, deletes), with statuses, headers and bodies checked.

use reqwest::Method;

use super::enc;
use crate::harness::Media;

const NS: &str = r#"xmlns="http://www.w3.org/2005/Atom" xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata""#;

/// A request as the SDK (WCF Data Services 5.6) sends it: Atom in, Atom asked for.
async fn sdk(
    m: &Media,
    token: &str,
    method: &str,
    path: &str,
    entry: Option<String>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = reqwest::Client::new()
        .request(Method::from_bytes(method.as_bytes()).unwrap(), m.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .header("x-ms-version", "2.19")
        .header("DataServiceVersion", "1.0;NetFx")
        .header("MaxDataServiceVersion", "3.0;NetFx")
        .header("Accept", "application/atom+xml,application/xml")
        .header("Accept-Charset", "UTF-8");
    if let Some(e) = entry {
        r = r.header("Content-Type", "application/atom+xml").body(e);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// An SDK request entry around `properties` (alphabetical, typed, as the client wrote them).
fn entry(links: &str, properties: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><entry {NS}>{links}<id /><title /><updated>2026-11-22T10:00:00Z</updated><author><name /></author><content type="application/xml"><m:properties>{properties}</m:properties></content></entry>"#
    )
}

/// A `$batch` body of one changeset of Atom parts (request line, Content-ID, entry), with
/// CRLF lines and no line break after the end, as WCF Data Services wrote it.
fn changeset(parts: &[(String, u32, &str)]) -> String {
    let mut out =
        String::from("--batch_b1\r\nContent-Type: multipart/mixed; boundary=changeset_c1\r\n\r\n");
    for (line, id, body) in parts {
        out.push_str(&format!(
            "--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{line} HTTP/1.1\r\nContent-ID: {id}\r\nContent-Type: application/atom+xml\r\nDataServiceVersion: 3.0;NetFx\r\nMaxDataServiceVersion: 3.0;NetFx\r\nAccept: application/atom+xml,application/xml\r\nAccept-Charset: UTF-8\r\n\r\n{body}\r\n"
        ));
    }
    out.push_str("--changeset_c1--\r\n--batch_b1--");
    out
}

/// POSTs a `$batch` as the SDK does: (status, content type, body).
async fn send_batch(m: &Media, token: &str, body: String) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(m.url("/api/$batch"))
        .header("Authorization", format!("Bearer {token}"))
        .header("x-ms-version", "2.19")
        .header("DataServiceVersion", "1.0;NetFx")
        .header("MaxDataServiceVersion", "3.0;NetFx")
        .header("Accept", "multipart/mixed")
        .header("Content-Type", "multipart/mixed; boundary=batch_b1")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (status, ct, r.text().await.unwrap())
}

/// The text of the first `<d:{name}>` in `xml`.
fn prop(xml: &str, name: &str) -> String {
    let open = format!("<d:{name}");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {xml}"));
    let rest = &xml[start..];
    let body = &rest[rest.find('>').unwrap() + 1..];
    body[..body.find("</d:").unwrap_or(0)].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_atom_exchanges_create_read_update_and_fail_as_recorded() {
    let m = Media::start(&[]).await;
    let token = m.token().await;

    // POST Assets: 201, an Atom entry whose <id> is the Location.
    let asset = entry(
        "",
        r#"<d:AlternateId m:null="true" /><d:Created m:type="Edm.DateTime">0001-01-01T00:00:00</d:Created><d:Id m:null="true" /><d:LastModified m:type="Edm.DateTime">0001-01-01T00:00:00</d:LastModified><d:Name>UploadSingleFile_4/11/2013 4:29:38 PM</d:Name><d:Options m:type="Edm.Int32">0</d:Options><d:State m:type="Edm.Int32">0</d:State>"#,
    );
    let (s, h, xml) = sdk(&m, &token, "POST", "/api/Assets", Some(asset)).await;
    assert_eq!(s, 201, "{xml}");
    assert_eq!(
        h["content-type"],
        "application/atom+xml;type=entry;charset=utf-8"
    );
    assert_eq!(h["dataserviceversion"], "1.0;", "as recorded");
    assert_eq!(
        h["access-control-expose-headers"],
        "request-id, x-ms-request-id"
    );
    assert_eq!(h["request-id"], h["x-ms-request-id"]);
    let location = h["location"].to_str().unwrap().to_string();
    assert!(xml.contains(&format!("<id>{location}</id>")), "{xml}");
    assert!(xml.contains(r#"<category term="Microsoft.Cloud.Media.Vod.Rest.Data.Models.Asset""#));
    assert!(xml.contains(r#"related/Files" type="application/atom+xml;type=feed" title="Files""#));
    assert_eq!(prop(&xml, "Name"), "UploadSingleFile_4/11/2013 4:29:38 PM");
    assert!(
        xml.contains(r#"<d:State m:type="Edm.Int32">0</d:State>"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<d:Created m:type="Edm.DateTime">"#),
        "{xml}"
    );
    let aid = prop(&xml, "Id");
    assert!(aid.starts_with("nb:cid:UUID:"), "{aid}");

    // The SDK reads it back as a feed with a filter on the set with empty parentheses.
    let (s, h, feed) = sdk(
        &m,
        &token,
        "GET",
        &format!("/api/Assets()?$filter=Id%20eq%20'{}'&$top=2", enc(&aid)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{feed}");
    assert_eq!(
        h["content-type"],
        "application/atom+xml;type=feed;charset=utf-8"
    );
    assert_eq!(h["dataserviceversion"], "2.0;", "as recorded");
    assert!(
        feed.contains("<title type=\"text\">Assets</title>"),
        "{feed}"
    );
    assert_eq!(feed.matches("<entry>").count(), 1, "{feed}");
    assert_eq!(prop(&feed, "Id"), aid);

    // POST AccessPolicies and Files as the SDK wrote them (Double, Int64, Boolean).
    let policy = entry(
        "",
        r#"<d:Created m:type="Edm.DateTime">0001-01-01T00:00:00</d:Created><d:DurationInMinutes m:type="Edm.Double">720</d:DurationInMinutes><d:Id m:null="true" /><d:LastModified m:type="Edm.DateTime">0001-01-01T00:00:00</d:LastModified><d:Name>Read</d:Name><d:Permissions m:type="Edm.Int32">1</d:Permissions>"#,
    );
    let (s, _, xml) = sdk(&m, &token, "POST", "/api/AccessPolicies", Some(policy)).await;
    assert_eq!(s, 201, "{xml}");
    assert!(
        xml.contains(r#"<d:DurationInMinutes m:type="Edm.Double">720</d:DurationInMinutes>"#),
        "{xml}"
    );
    let pid = prop(&xml, "Id");
    let file = entry(
        "",
        &format!(
            r#"<d:ContentChecksum m:null="true" /><d:ContentFileSize m:type="Edm.Int64">1048576</d:ContentFileSize><d:Created m:type="Edm.DateTime">0001-01-01T00:00:00</d:Created><d:EncryptionKeyId m:null="true" /><d:EncryptionScheme m:null="true" /><d:EncryptionVersion m:null="true" /><d:Id m:null="true" /><d:InitializationVector m:null="true" /><d:IsEncrypted m:type="Edm.Boolean">false</d:IsEncrypted><d:IsPrimary m:type="Edm.Boolean">false</d:IsPrimary><d:LastModified m:type="Edm.DateTime">0001-01-01T00:00:00</d:LastModified><d:MimeType>video/mp4</d:MimeType><d:Name>BigBuckBunny.mp4</d:Name><d:ParentAssetId>{aid}</d:ParentAssetId>"#
        ),
    );
    let (s, _, xml) = sdk(&m, &token, "POST", "/api/Files", Some(file)).await;
    assert_eq!(s, 201, "{xml}");
    assert!(
        xml.contains(r#"<d:ContentFileSize m:type="Edm.Int64">1048576</d:ContentFileSize>"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<d:IsPrimary m:type="Edm.Boolean">false</d:IsPrimary>"#),
        "{xml}"
    );
    assert!(xml.contains(r#"title="AssetFile""#), "{xml}");
    let fid = prop(&xml, "Id");

    // MERGE of the file (the SDK sends the whole entry again, with its <id>): 204.
    let merge = entry(
        "",
        &format!(
            r#"<d:ContentFileSize m:type="Edm.Int64">2097152</d:ContentFileSize><d:Id>{fid}</d:Id><d:IsPrimary m:type="Edm.Boolean">true</d:IsPrimary><d:MimeType>video/mp4</d:MimeType><d:Name>BigBuckBunny.mp4</d:Name><d:ParentAssetId>{aid}</d:ParentAssetId>"#
        ),
    )
    .replace("<id />", &format!("<id>{}</id>", m.url(&format!("/api/Files('{}')", enc(&fid)))));
    let path = format!("/api/Files('{}')", enc(&fid));
    let (s, _, text) = sdk(&m, &token, "MERGE", &path, Some(merge)).await;
    assert_eq!(s, 204, "{text}");
    let (_, _, xml) = sdk(&m, &token, "GET", &path, None).await;
    assert_eq!(prop(&xml, "ContentFileSize"), "2097152");
    assert_eq!(prop(&xml, "IsPrimary"), "true");

    // An origin locator with the Id the walkthrough chose, linked by properties.
    let lid = "nb:lid:UUID:0b7c4f0e-6c59-4b0a-9d36-5d8f3f1f8d11";
    let locator = entry(
        "",
        &format!(
            r#"<d:AccessPolicyId>{pid}</d:AccessPolicyId><d:AssetId>{aid}</d:AssetId><d:Id>{lid}</d:Id><d:StartTime m:type="Edm.DateTime">2026-11-22T09:55:00</d:StartTime><d:Type m:type="Edm.Int32">2</d:Type>"#
        ),
    );
    let (s, _, xml) = sdk(&m, &token, "POST", "/api/Locators", Some(locator)).await;
    assert_eq!(s, 201, "{xml}");
    assert_eq!(prop(&xml, "Id"), lid);
    assert!(
        xml.contains(r#"related/AccessPolicy" type="application/atom+xml;type=entry""#),
        "{xml}"
    );
    assert!(
        prop(&xml, "Path").ends_with("/0b7c4f0e-6c59-4b0a-9d36-5d8f3f1f8d11/"),
        "{xml}"
    );

    // Errors are OData's XML error; a body that is not Atom says so.
    let (s, h, xml) = sdk(
        &m,
        &token,
        "GET",
        "/api/Assets('nb%3Acid%3AUUID%3A00000000-0000-0000-0000-000000000000')",
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    assert!(
        xml.contains("<m:error") && xml.contains("<m:message xml:lang=\"en-US\">"),
        "{xml}"
    );
    let (s, _, xml) = sdk(&m, &token, "POST", "/api/Assets", Some("<entry".into())).await;
    assert_eq!(s, 400, "{xml}");
    assert!(xml.contains("not a valid Atom entry"), "{xml}");

    // The service document in AtomPub.
    let (s, _, xml) = sdk(&m, &token, "GET", "/api/", None).await;
    assert_eq!(s, 200);
    assert!(xml.contains("<collection href=\"Assets\">"), "{xml}");

    // $metadata: the EDMX of what is served.
    let (s, h, xml) = sdk(&m, &token, "GET", "/api/$metadata", None).await;
    assert_eq!(s, 200, "{xml}");
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    for part in [
        "<edmx:Edmx Version=\"1.0\"",
        "<EntityContainer Name=\"WindowsAzureMediaServices\" m:IsDefaultEntityContainer=\"true\">",
        "<EntitySet Name=\"ContentKeys\" EntityType=\"Microsoft.Cloud.Media.Vod.Rest.Data.Models.ContentKey\" />",
        "<NavigationProperty Name=\"OutputMediaAssets\"",
        "<FunctionImport Name=\"CreateFileInfos\" m:HttpMethod=\"GET\"><Parameter Name=\"assetid\" Type=\"Edm.String\" /></FunctionImport>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }
}

/// `job.Submit()` as the SDK sends it: one `$batch` changeset of `POST Jobs` (input assets as
/// related links) and `POST $1/Tasks`, in Atom with CRLF lines; the answer is one `201` per
/// part with its inner `Content-ID` and `Location`, and the job runs. A changeset with a bad
/// part creates nothing and answers that part's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_batch_job_submit_creates_the_job_with_its_tasks() {
    let m = Media::start(&[]).await;
    let token = m.token().await;
    let raw = super::Raw::new(&m).await;
    let dir = tempfile::tempdir().unwrap();
    let clip = crate::encoding::sample(dir.path(), "clip.mp4", 320, 180, 2);
    let aid = raw.asset_with(&m, &clip).await;
    let api = m.url("/api/");
    let job = entry(
        &format!(
            r#"<link rel="http://schemas.microsoft.com/ado/2007/08/dataservices/related/InputMediaAssets" type="application/atom+xml;type=feed" title="InputMediaAssets" href="{api}Assets('{}')" />"#,
            enc(&aid)
        ),
        r#"<d:Created m:type="Edm.DateTime">0001-01-01T00:00:00</d:Created><d:EndTime m:type="Edm.DateTime" m:null="true" /><d:Id m:null="true" /><d:JobNotificationSubscriptions /><d:LastModified m:type="Edm.DateTime">0001-01-01T00:00:00</d:LastModified><d:Name>Batch job</d:Name><d:Priority m:type="Edm.Int32">0</d:Priority><d:RunningDuration m:type="Edm.Double">0</d:RunningDuration><d:StartTime m:type="Edm.DateTime" m:null="true" /><d:State m:type="Edm.Int32">0</d:State><d:TemplateId m:null="true" />"#,
    );
    let task = |processor: &str| {
        entry(
            "",
            &format!(
                r#"<d:Configuration>Adaptive Streaming</d:Configuration><d:EncryptionKeyId m:null="true" /><d:EncryptionScheme m:null="true" /><d:EncryptionVersion m:null="true" /><d:EndTime m:type="Edm.DateTime" m:null="true" /><d:ErrorDetails /><d:HistoricalEvents /><d:Id></d:Id><d:InitializationVector m:null="true" /><d:MediaProcessorId>{processor}</d:MediaProcessorId><d:Name>Encode</d:Name><d:Options m:type="Edm.Int32">0</d:Options><d:PerfMessage m:null="true" /><d:Priority m:type="Edm.Int32">0</d:Priority><d:Progress m:type="Edm.Double">0</d:Progress><d:RunningDuration m:type="Edm.Double">0</d:RunningDuration><d:StartTime m:type="Edm.DateTime" m:null="true" /><d:State m:type="Edm.Int32">0</d:State><d:TaskBody>&lt;?xml version="1.0" encoding="utf-16"?&gt;&#xD;&#xA;&lt;taskBody&gt;&#xD;&#xA;  &lt;inputAsset&gt;JobInputAsset(0)&lt;/inputAsset&gt;&#xD;&#xA;  &lt;outputAsset assetCreationOptions="0" assetFormatOption="0" assetName="Batch output"&gt;JobOutputAsset(0)&lt;/outputAsset&gt;&#xD;&#xA;&lt;/taskBody&gt;</d:TaskBody><d:TaskNotificationSubscriptions />"#
            ),
        )
    };
    let batch = |task: String| {
        changeset(&[
            (format!("POST {api}Jobs"), 1, &job),
            (format!("POST {api}$1/Tasks"), 2, &task),
        ])
    };
    let send = |body: String| send_batch(&m, &token, body);
    let jobs_before = raw.ok("GET", "/api/Jobs", None).await["value"]
        .as_array()
        .unwrap()
        .len();

    // A changeset whose task names no processor: one error part, and no job left behind.
    let (s, _, text) = send(batch(task(
        "nb:mpid:UUID:00000000-0000-0000-0000-000000000000",
    )))
    .await;
    assert_eq!(s, 202, "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(!text.contains("HTTP/1.1 201"), "{text}");
    assert!(text.contains("<m:error"), "{text}");
    let jobs = raw.ok("GET", "/api/Jobs", None).await["value"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(jobs, jobs_before, "a failed changeset creates nothing");

    let (s, ct, text) = send(batch(task(
        "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
    )))
    .await;
    assert_eq!(s, 202, "{text}");
    let boundary = ct.split("boundary=").nth(1).unwrap();
    assert!(boundary.starts_with("batchresponse_"), "{ct}");
    assert!(text.contains("boundary=changesetresponse_"), "{text}");
    // Each part: application/http, the status line, then Content-ID, Location, an entry.
    let parts: Vec<&str> = text
        .split("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n")
        .skip(1)
        .collect();
    assert_eq!(parts.len(), 2, "{text}");
    for (part, (id, set)) in parts.iter().zip([("1", "Jobs"), ("2", "Tasks")]) {
        assert!(
            part.starts_with(&format!("HTTP/1.1 201 Created\r\nContent-ID: {id}\r\n")),
            "{part}"
        );
        let location = part
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or_else(|| panic!("no Location in {part}"))
            .trim();
        assert!(location.starts_with(&format!("{api}{set}('")), "{location}");
        assert!(part.contains(&format!("<id>{location}</id>")), "{part}");
        assert!(
            part.contains("content-type: application/atom+xml;type=entry;charset=utf-8"),
            "{part}"
        );
    }
    let jid = prop(parts[0], "Id");
    assert_eq!(prop(parts[1], "Name"), "Encode");

    // The SDK then refreshes the job by filter, and it runs to the end with its named output.
    let (s, _, feed) = sdk(
        &m,
        &token,
        "GET",
        &format!("/api/Jobs()?$filter=Id%20eq%20'{}'&$top=1", enc(&jid)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{feed}");
    assert_eq!(prop(&feed, "Id"), jid);
    raw.finished(&jid).await;
    let outputs = raw
        .ok(
            "GET",
            &format!("/api/Jobs('{}')/OutputMediaAssets", enc(&jid)),
            None,
        )
        .await;
    assert_eq!(outputs["value"][0]["Name"], "Batch output");

    // The reference's own `$batch` sample, in JSON: `InputMediaAssets@odata.bind`, a verbose
    // task, answers in JSON.
    let sample = format!(
        "--batch_b1\r\nContent-Type: multipart/mixed; boundary=changeset_c1\r\n\r\n--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPOST {api}Jobs HTTP/1.1\r\nContent-ID: 1\r\nContent-Type: application/json\r\nAccept: application/json\r\nDataServiceVersion: 3.0\r\nMaxDataServiceVersion: 3.0\r\nAccept-Charset: UTF-8\r\n\r\n{{\"Name\" : \"NewTestJob\", \"InputMediaAssets@odata.bind\":[\"{api}Assets('{}')\"]}}\r\n--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPOST {api}$1/Tasks HTTP/1.1\r\nContent-ID: 2\r\nContent-Type: application/json;odata=verbose\r\nAccept: application/json;odata=verbose\r\nDataServiceVersion: 3.0\r\nMaxDataServiceVersion: 3.0\r\nAccept-Charset: UTF-8\r\n\r\n{{\"Configuration\":\"Adaptive Streaming\",\"MediaProcessorId\":\"nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56\",\"TaskBody\":\"<?xml version=\\\"1.0\\\" encoding=\\\"utf-8\\\"?><taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset assetName=\\\"Custom output name\\\">JobOutputAsset(0)</outputAsset></taskBody>\"}}\r\n--changeset_c1--\r\n--batch_b1--\r\n",
        enc(&aid)
    );
    let (s, _, text) = send_batch(&m, &token, sample).await;
    assert_eq!(s, 202, "{text}");
    assert_eq!(text.matches("HTTP/1.1 201 Created").count(), 2, "{text}");

    assert!(text.contains("\"Name\":\"NewTestJob\""), "{text}");
    assert!(
        text.contains("\"d\":"),
        "the task part answers verbose JSON: {text}"
    );

    // A batch inside a batch is refused, not followed.
    let nested = format!(
        "--batch_b1\r\nContent-Type: application/http\r\n\r\nPOST {api}$batch HTTP/1.1\r\nContent-Type: multipart/mixed; boundary=batch_b1\r\n\r\n--batch_b1--\r\n--batch_b1--"
    );
    let (s, _, text) = send_batch(&m, &token, nested).await;
    assert_eq!(s, 202, "{text}");
    assert!(
        text.contains("HTTP/1.1 400 Bad Request") && text.contains("another $batch"),
        "{text}"
    );
}

/// `TaskOptions.ProtectedConfiguration` as the SDK did it: the protection key's thumbprint
/// and certificate from `GetProtectionKeyId`/`GetProtectionKey` (XML values), the
/// configuration AES-256-CBC encrypted under a fresh key wrapped to the certificate with
/// RSA-OAEP (SHA-1), sent in one changeset with the key (`ContentKeys`, its checksum) before
/// the task that names it. The emulator decrypts and runs it; the task keeps it encrypted; a
/// wrong checksum or a key for another certificate is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_as_the_sdk_sent_it_with_a_protected_configuration() {
    use aes::cipher::{BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};
    use base64::Engine as _;
    use rsa::pkcs8::DecodePublicKey;
    use x509_cert::der::{Decode, Encode};
    let b64 = base64::engine::general_purpose::STANDARD;
    let m = Media::start(&[]).await;
    let token = m.token().await;
    let raw = super::Raw::new(&m).await;

    let (s, h, xml) = sdk(
        &m,
        &token,
        "GET",
        "/api/GetProtectionKeyId?contentKeyType=2",
        None,
    )
    .await;
    assert_eq!(s, 200, "{xml}");
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    let open =
        "<GetProtectionKeyId xmlns=\"http://schemas.microsoft.com/ado/2007/08/dataservices\">";
    let thumbprint = xml
        .split(open)
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(thumbprint.len(), 40, "{xml}");
    let (s, _, xml) = sdk(
        &m,
        &token,
        "GET",
        &format!("/api/GetProtectionKey?protectionKeyId='{thumbprint}'"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{xml}");
    let cert_b64 = xml
        .split("dataservices\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let der = b64.decode(cert_b64).unwrap();
    use sha1::Digest;
    assert_eq!(
        hex::encode_upper(sha1::Sha1::digest(&der)),
        thumbprint,
        "the thumbprint is the certificate's"
    );
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let public = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();

    // The SDK's side: a fresh key and IV, the configuration encrypted, the key wrapped.
    let key: [u8; 32] = rand::random();
    let iv: [u8; 16] = rand::random();
    let configuration = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
        .unwrap()
        .encrypt_padded_vec_mut::<aes::cipher::block_padding::Pkcs7>(b"Adaptive Streaming");
    let wrapped = public
        .encrypt(
            &mut rand::thread_rng(),
            rsa::Oaep::new::<sha1::Sha1>(),
            &key,
        )
        .unwrap();
    let kid_guid = uuid::Uuid::new_v4();
    let kid = format!("nb:kid:UUID:{kid_guid}");
    let mut block = aes::Block::clone_from_slice(&kid_guid.to_bytes_le());
    aes::Aes256::new_from_slice(&key)
        .unwrap()
        .encrypt_block(&mut block);
    let checksum = b64.encode(&block[..8]);

    // The walkthrough's upload as the SDK did it: an asset, a write policy, a SAS locator,
    // the blob PUT through it, CreateFileInfos, the locator deleted.
    let dir = tempfile::tempdir().unwrap();
    let clip = crate::encoding::sample(dir.path(), "clip.mp4", 320, 180, 2);
    let (s, _, xml) = sdk(
        &m,
        &token,
        "POST",
        "/api/Assets",
        Some(entry(
            "",
            "<d:Name>mezzanine</d:Name><d:Options m:type=\"Edm.Int32\">0</d:Options>",
        )),
    )
    .await;
    assert_eq!(s, 201, "{xml}");
    let aid = prop(&xml, "Id");
    let (s, _, xml) = sdk(
        &m,
        &token,
        "POST",
        "/api/AccessPolicies",
        Some(entry("", "<d:DurationInMinutes m:type=\"Edm.Double\">60</d:DurationInMinutes><d:Name>Write</d:Name><d:Permissions m:type=\"Edm.Int32\">2</d:Permissions>")),
    )
    .await;
    assert_eq!(s, 201, "{xml}");
    let write = prop(&xml, "Id");
    let (s, _, xml) = sdk(
        &m,
        &token,
        "POST",
        "/api/Locators",
        Some(entry("", &format!("<d:AccessPolicyId>{write}</d:AccessPolicyId><d:AssetId>{aid}</d:AssetId><d:StartTime m:type=\"Edm.DateTime\" m:null=\"true\" /><d:Type m:type=\"Edm.Int32\">1</d:Type>"))),
    )
    .await;
    assert_eq!(s, 201, "{xml}");
    let sas = prop(&xml, "Id");
    let base = prop(&xml, "BaseUri");
    let query = prop(&xml, "ContentAccessComponent").replace("&amp;", "&");
    let put = reqwest::Client::new()
        .put(format!("{base}/clip.mp4{query}"))
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-version", "2019-12-12")
        .body(std::fs::read(&clip).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{}", put.text().await.unwrap());
    let (s, _, text) = sdk(
        &m,
        &token,
        "GET",
        &format!("/api/CreateFileInfos?assetid='{}'", enc(&aid)),
        None,
    )
    .await;
    assert_eq!(s, 204, "{text}");
    let (s, _, text) = sdk(
        &m,
        &token,
        "DELETE",
        &format!("/api/Locators('{}')", enc(&sas)),
        None,
    )
    .await;
    assert_eq!(s, 204, "{text}");
    let api = m.url("/api/");
    let job = entry(
        &format!(
            r#"<link rel="http://schemas.microsoft.com/ado/2007/08/dataservices/related/InputMediaAssets" type="application/atom+xml;type=feed" title="InputMediaAssets" href="{api}Assets('{}')" />"#,
            enc(&aid)
        ),
        r#"<d:Name>Protected job</d:Name><d:Priority m:type="Edm.Int32">0</d:Priority>"#,
    );
    let content_key = |checksum: &str, thumbprint: &str| {
        entry(
            "",
            &format!(
                r#"<d:AuthorizationPolicyId m:null="true" /><d:Checksum>{checksum}</d:Checksum><d:ContentKeyType m:type="Edm.Int32">2</d:ContentKeyType><d:Created m:type="Edm.DateTime">0001-01-01T00:00:00</d:Created><d:EncryptedContentKey>{}</d:EncryptedContentKey><d:Id>{kid}</d:Id><d:LastModified m:type="Edm.DateTime">0001-01-01T00:00:00</d:LastModified><d:Name>ConfigurationEncryption</d:Name><d:ProtectionKeyId>{thumbprint}</d:ProtectionKeyId><d:ProtectionKeyType m:type="Edm.Int32">0</d:ProtectionKeyType><d:TrackIdentifiers m:null="true" />"#,
                b64.encode(&wrapped)
            ),
        )
    };
    let task = entry(
        "",
        &format!(
            r#"<d:Configuration>{}</d:Configuration><d:EncryptionKeyId>{kid}</d:EncryptionKeyId><d:EncryptionScheme>ConfigurationEncryption</d:EncryptionScheme><d:EncryptionVersion>1.0</d:EncryptionVersion><d:ErrorDetails /><d:HistoricalEvents /><d:Id></d:Id><d:InitializationVector>{}</d:InitializationVector><d:MediaProcessorId>nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56</d:MediaProcessorId><d:Name>Protected encode</d:Name><d:Options m:type="Edm.Int32">1</d:Options><d:TaskBody>&lt;?xml version="1.0" encoding="utf-16"?&gt;&lt;taskBody&gt;&lt;inputAsset&gt;JobInputAsset(0)&lt;/inputAsset&gt;&lt;outputAsset assetCreationOptions="0" assetName="Protected output"&gt;JobOutputAsset(0)&lt;/outputAsset&gt;&lt;/taskBody&gt;</d:TaskBody><d:TaskNotificationSubscriptions />"#,
            b64.encode(&configuration),
            b64.encode(iv)
        ),
    );
    let submit = |key_entry: String| {
        changeset(&[
            (format!("POST {api}Jobs"), 1, &job),
            (format!("POST {api}ContentKeys"), 2, &key_entry),
            (format!("POST {api}$1/Tasks"), 3, &task),
        ])
    };

    // A wrong checksum, or a key wrapped to another certificate: refused by name, nothing made.
    for (bad, says) in [
        (content_key("AAAAAAAAAAA=", &thumbprint), "Checksum"),
        (
            content_key(&checksum, "0000000000000000000000000000000000000000"),
            "protection key",
        ),
    ] {
        let (s, _, text) = send_batch(&m, &token, submit(bad)).await;
        assert_eq!(s, 202, "{text}");
        assert!(
            !text.contains("HTTP/1.1 201") && text.contains(says),
            "{text}"
        );
    }
    assert!(raw.ok("GET", "/api/ContentKeys", None).await["value"]
        .as_array()
        .unwrap()
        .is_empty());

    let (s, _, text) = send_batch(&m, &token, submit(content_key(&checksum, &thumbprint))).await;
    assert_eq!(s, 202, "{text}");
    for id in 1..=3 {
        assert!(
            text.contains(&format!("HTTP/1.1 201 Created\r\nContent-ID: {id}\r\n")),
            "{text}"
        );
    }
    let task_part = text.split("Content-ID: 3\r\n").nth(1).unwrap();
    assert_eq!(
        prop(task_part, "EncryptionScheme"),
        "ConfigurationEncryption"
    );
    assert_eq!(
        prop(task_part, "Configuration"),
        b64.encode(&configuration),
        "kept encrypted"
    );
    let jid = prop(text.split("Content-ID: 1\r\n").nth(1).unwrap(), "Id");

    // RebindContentKey gives the clear key back (the SDK's GetClearConfiguration).
    let (s, _, xml) = sdk(
        &m,
        &token,
        "GET",
        &format!(
            "/api/RebindContentKey?id='{}'&x509Certificate=''",
            enc(&kid)
        ),
        None,
    )
    .await;
    assert_eq!(s, 200, "{xml}");
    assert!(xml.contains(&b64.encode(key)), "{xml}");

    // Polling as the SDK refreshed a job: by filter, in Atom, until it ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let (_, _, feed) = sdk(
            &m,
            &token,
            "GET",
            &format!("/api/Jobs()?$filter=Id%20eq%20'{}'&$top=1", enc(&jid)),
            None,
        )
        .await;
        match prop(&feed, "State").as_str() {
            "3" => break,
            "4" | "5" => panic!("the job ended: {feed}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job never finished: {feed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let outputs = raw
        .ok(
            "GET",
            &format!("/api/Jobs('{}')/OutputMediaAssets", enc(&jid)),
            None,
        )
        .await;
    assert_eq!(outputs["value"][0]["Name"], "Protected output");
    let files = raw
        .ok(
            "GET",
            &format!(
                "/api/Assets('{}')/Files",
                enc(outputs["value"][0]["Id"].as_str().unwrap())
            ),
            None,
        )
        .await;
    assert!(
        files["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["Name"].as_str().unwrap().ends_with(".ism")),
        "{files}"
    );

    // $links: the key linked to an asset as the SDK writes a link (`<uri>` in XML), then
    // listed, navigated and unlinked.
    let links = format!("/api/Assets('{}')/$links/ContentKeys", enc(&aid));
    let uri = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><uri xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices">{api}ContentKeys('{}')</uri>"#,
        enc(&kid)
    );
    let r = reqwest::Client::new()
        .post(m.url(&links))
        .header("Authorization", format!("Bearer {token}"))
        .header("x-ms-version", "2.19")
        .header("Content-Type", "application/xml")
        .body(uri)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap());
    let listed = raw.ok("GET", &links, None).await;
    assert!(
        listed["value"][0]["url"]
            .as_str()
            .unwrap()
            .contains("ContentKeys('nb%3Akid"),
        "{listed}"
    );
    let (s, _, feed) = sdk(
        &m,
        &token,
        "GET",
        &format!("/api/Assets('{}')/ContentKeys", enc(&aid)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{feed}");
    assert_eq!(prop(&feed, "Id"), kid);
    let one = format!("{links}('{}')", enc(&kid));
    raw.expect("DELETE", &one, None, 204).await;
    raw.expect("DELETE", &one, None, 404).await;

    // Published as the walkthrough did: a read policy, an origin locator with the Id it
    // chose; the origin serves the output; then the deletes.
    let out = outputs["value"][0]["Id"].as_str().unwrap().to_string();
    let (s, _, xml) = sdk(
        &m,
        &token,
        "POST",
        "/api/AccessPolicies",
        Some(entry("", "<d:DurationInMinutes m:type=\"Edm.Double\">43200</d:DurationInMinutes><d:Name>Read</d:Name><d:Permissions m:type=\"Edm.Int32\">1</d:Permissions>")),
    )
    .await;
    assert_eq!(s, 201, "{xml}");
    let read = prop(&xml, "Id");
    let lid = format!("nb:lid:UUID:{}", uuid::Uuid::new_v4());
    let (s, _, xml) = sdk(
        &m,
        &token,
        "POST",
        "/api/Locators",
        Some(entry("", &format!("<d:AccessPolicyId>{read}</d:AccessPolicyId><d:AssetId>{out}</d:AssetId><d:Id>{lid}</d:Id><d:StartTime m:type=\"Edm.DateTime\" m:null=\"true\" /><d:Type m:type=\"Edm.Int32\">2</d:Type>"))),
    )
    .await;
    assert_eq!(s, 201, "{xml}");
    assert_eq!(prop(&xml, "Id"), lid);
    let (status, manifest) =
        crate::origin::get(&format!("{}clip.ism/manifest", prop(&xml, "Path")));
    assert_eq!(
        status,
        200,
        "{} {}",
        prop(&xml, "Path"),
        String::from_utf8_lossy(&manifest)
    );
    assert!(String::from_utf8_lossy(&manifest).contains("SmoothStreamingMedia"));
    for path in [
        format!("/api/Locators('{}')", enc(&lid)),
        format!("/api/Assets('{}')", enc(&out)),
        format!("/api/Assets('{}')", enc(&aid)),
    ] {
        let (s, _, text) = sdk(&m, &token, "DELETE", &path, None).await;
        assert_eq!(s, 204, "DELETE {path}: {text}");
        let (s, _, text) = sdk(&m, &token, "GET", &path, None).await;
        assert_eq!(s, 404, "GET {path} after DELETE: {text}");
    }
}
