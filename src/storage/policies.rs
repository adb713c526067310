//! Stored access policies (a container's signed identifiers) and the service SAS that names
//! one (`si=`): a SAS whose permissions and lifetime live in the container, so removing the
//! policy revokes every URL made from it at once. Media Services backed each SAS locator this
//! way, which is why an asset (one container) held at most five locators.

use std::sync::Arc;

use azure_core::{Context, Method, Policy, PolicyResult, Request};
use azure_storage_blobs::prelude::*;
use time::OffsetDateTime;

use super::error::classify;
use super::{SasPerms, Storage, StorageError};

/// At most this many stored access policies per container (the service's limit).
pub const MAX_POLICIES: usize = 5;

/// The version the SAS is signed for (the one the SDK signs its own with).
const SAS_VERSION: &str = "2022-11-02";

/// One stored access policy: an identifier (at most 64 characters), its lifetime and
/// permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub id: String,
    pub start: OffsetDateTime,
    pub expiry: OffsetDateTime,
    pub perms: SasPerms,
}

impl Storage {
    /// Makes `policies` the container's stored access policies, replacing what it had (an
    /// empty list removes them all; what is no longer listed is revoked).
    #[tracing::instrument(skip(self, policies), fields(account = self.account(), n = policies.len()))]
    pub async fn set_container_policies(
        &self,
        container: &str,
        policies: &[StoredPolicy],
    ) -> Result<(), StorageError> {
        if policies.len() > MAX_POLICIES {
            return Err(StorageError::Invalid(format!(
                "a container holds at most {MAX_POLICIES} stored access policies, not {}",
                policies.len()
            )));
        }
        let list = StoredAccessPolicyList::new(
            policies
                .iter()
                .map(|p| {
                    StoredAccessPolicy::new(
                        p.id.clone(),
                        p.start,
                        p.expiry,
                        p.perms.sdk().to_string(),
                    )
                })
                .collect(),
        );
        self.call(
            "set container policies",
            self.target(container, None),
            || {
                self.container_client(container)
                    .set_acl(PublicAccess::None)
                    .stored_access_policy_list(list.clone())
                    .into_future()
            },
        )
        .await
        .map(|_| ())
    }

    /// A container URL with a service SAS naming the stored policy `id`: `sv`, `sr=c`, `si`
    /// and the signature only; permissions and lifetime are the policy's, so the URL stops
    /// working the moment the policy is removed.
    pub fn container_policy_sas_url(
        &self,
        container: &str,
        id: &str,
    ) -> Result<url::Url, StorageError> {
        let t = self.target(container, None);
        let key = azure_core::auth::Secret::new(self.inner.account.key.clone());
        // The service SAS string-to-sign (version 2020-12-06 and later): sp, st, se,
        // canonicalized resource, si, sip, spr, sv, sr, snapshot time, encryption scope,
        // rscc, rscd, rsce, rscl, rsct; what the URL leaves out is an empty line.
        let resource = format!("/blob/{}/{container}", self.account());
        let fields = [
            "",
            "",
            "",
            &resource,
            id,
            "",
            "",
            SAS_VERSION,
            "c",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ];
        let sig = azure_core::hmac::hmac_sha256(&fields.join("\n"), &key)
            .map_err(|e| classify("sign a SAS", t, e))?;
        let mut url = self
            .container_client(container)
            .url()
            .map_err(|e| classify("sign a SAS", t, e))?;
        url.query_pairs_mut()
            .append_pair("sv", SAS_VERSION)
            .append_pair("sr", "c")
            .append_pair("si", id)
            .append_pair("sig", &sig);
        Ok(self.public_url(url))
    }
}

/// The SDK writes a stored policy's `<Id>` followed by a newline and tabs, which a service
/// that keeps whitespace (Azurite) stores as part of the Id, so no SAS naming it would ever
/// match. This per-call policy (it runs before the request is signed) trims it.
#[derive(Debug)]
pub(super) struct TrimPolicyIds;

#[async_trait::async_trait]
impl Policy for TrimPolicyIds {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let acl = *request.method() == Method::Put
            && request
                .url()
                .query()
                .is_some_and(|q| q.contains("comp=acl"));
        if acl {
            if let azure_core::Body::Bytes(b) = request.body() {
                let fixed = String::from_utf8_lossy(b).replace("\n\t\t</Id>", "</Id>");
                let len = fixed.len();
                request.set_body(bytes::Bytes::from(fixed));
                request.insert_header(azure_core::headers::CONTENT_LENGTH, len.to_string());
            }
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}
