//! `account(name)`: a datacenter from the accounts file, with its storage account.

use std::sync::Arc;

use rhai::Engine;

use super::engine::{func, Host};
use crate::config::StorageAccount;
use crate::storage::{Storage, StorageError};

/// A datacenter as scripts see it: `account("dc-a")`.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub storage: Storage,
}

impl Account {
    pub fn open(name: &str, storage: &StorageAccount) -> Result<Self, StorageError> {
        Ok(Self {
            name: name.to_string(),
            storage: Storage::open(storage)?,
        })
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
    engine.register_get("name", |a: &mut Account| a.name.clone());
    engine.register_get("storage", |a: &mut Account| a.storage.clone());
    engine.register_fn("to_string", |a: &mut Account| {
        format!("Account({}, storage {})", a.name, a.storage.account())
    });
    engine.register_fn("to_debug", |a: &mut Account| {
        format!("Account({}, storage {})", a.name, a.storage.account())
    });
}
