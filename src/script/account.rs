//! `account(name)`: a datacenter from the accounts file, with its storage account.

use std::sync::Arc;

use rhai::Engine;

use super::errors::{host_error, IntoScript, RhaiResult};
use super::host::Bridge;
use crate::ams::client::MediaClient;
use crate::config::MediaAccount;
use crate::config::StorageAccount;
use crate::storage::{Storage, StorageError};

/// A datacenter as scripts see it: `account("dc-a")`: its storage account and, when
/// configured, its Media Services account.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub storage: Storage,
    pub media: Option<Arc<MediaClient>>,
    pub bridge: Bridge,
}

impl Account {
    pub fn open(
        name: &str,
        storage: &StorageAccount,
        media: Option<MediaAccount>,
        bridge: Bridge,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            name: name.to_string(),
            storage: Storage::open(storage)?,
            media: media.map(|m| Arc::new(MediaClient::new(m))),
            bridge,
        })
    }

    /// The Media Services client, or an error saying how to configure one.
    pub fn media(&self) -> RhaiResult<&MediaClient> {
        self.media.as_deref().ok_or_else(|| {
            host_error(
                "config",
                format!("datacenter '{}' has no Media Services account", self.name),
                Some("add media_account, media_api and media_key_env to it in the accounts file (see amsplay.example.toml)".into()),
                None,
            )
        })
    }

    /// Runs a fallible async call from the script thread (see [`Bridge::call`]).
    pub fn call<T, E>(&self, f: impl std::future::Future<Output = Result<T, E>>) -> RhaiResult<T>
    where
        Result<T, E>: IntoScript<T>,
    {
        self.bridge.call(f)
    }
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Account>("Account");
    engine.register_fn("to_string", |a: &mut Account| a.to_string());
    engine.register_fn("to_debug", |a: &mut Account| a.to_string());
    engine.register_global_module(rhai::exported_module!(api).into());
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Account({}, storage {})",
            self.name,
            self.storage.account()
        )
    }
}

/// Datacenters as playbooks open them.
#[rhai::plugin::export_module]
mod api {
    use super::super::host::host;
    use super::{Account, RhaiResult, Storage};
    use rhai::plugin::*;

    /// A datacenter named in the accounts file (or the local environment: "dc-a", "dc-b").
    /// An unknown name is an error that lists the known ones.
    /// Example: let a = account("dc-a"); print(a.storage.containers());
    #[rhai_fn(return_raw)]
    pub fn account(ctx: NativeCallContext, name: &str) -> RhaiResult<Account> {
        host(&ctx)?.account(name)
    }

    /// The names of every configured datacenter.
    /// Example: for name in accounts() { print(name); }
    #[rhai_fn(return_raw)]
    pub fn accounts(ctx: NativeCallContext) -> RhaiResult<rhai::Array> {
        Ok(host(&ctx)?
            .accounts()
            .accounts
            .keys()
            .map(|k| k.clone().into())
            .collect())
    }

    /// The datacenter name the account was opened by.
    /// Example: print(a.name);
    #[rhai_fn(get = "name", pure)]
    pub fn name(account: &mut Account) -> String {
        account.name.clone()
    }

    /// The account's Blob Storage.
    /// Example: print(a.storage.containers());
    #[rhai_fn(get = "storage", pure)]
    pub fn storage(account: &mut Account) -> Storage {
        account.storage.clone()
    }
}
