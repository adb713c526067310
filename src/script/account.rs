//! `account(name)`: a datacenter from the accounts file, with its storage account.

use std::sync::Arc;

use rhai::Engine;

use super::errors::{host_error, IntoScript, RhaiResult};
use super::host::{func, getter, Bridge, Host};
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

pub fn register(engine: &mut Engine, host: &Arc<Host>) {
    engine.register_type_with_name::<Account>("Account");
    let h = host.clone();
    func(
        "account",
        &["name: String", "Account"],
        r#"A datacenter named in the accounts file (or the local environment: "dc-a", "dc-b").
An unknown name is an error that lists the known ones.
Example: let a = account("dc-a"); print(a.storage.containers());"#,
    )
    .register_into_engine(engine, move |name: &str| h.account(name));
    func(
        "accounts",
        &["Array"],
        r#"The names of every configured datacenter.
Example: for name in accounts() { print(name); }"#,
    )
    .register_into_engine(engine, {
        let h = host.clone();
        move || -> rhai::Array {
            h.accounts()
                .accounts
                .keys()
                .map(|k| k.clone().into())
                .collect()
        }
    });
    getter(
        "Account",
        "name",
        "String",
        "The datacenter name the account was opened by.\nExample: print(a.name);",
    )
    .register_into_engine(engine, |a: &mut Account| a.name.clone());
    getter(
        "Account",
        "storage",
        "Storage",
        "The account's Blob Storage.\nExample: print(a.storage.containers());",
    )
    .register_into_engine(engine, |a: &mut Account| a.storage.clone());
    engine.register_fn("to_string", |a: &mut Account| {
        format!("Account({}, storage {})", a.name, a.storage.account())
    });
    engine.register_fn("to_debug", |a: &mut Account| {
        format!("Account({}, storage {})", a.name, a.storage.account())
    });
}
