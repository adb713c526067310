//! Host errors as scripts see them: a runtime error carrying a map `#{kind, status, message,
//! hint}` that `catch` can branch on. Rhai fills in the position of the call that failed.

use rhai::{Dynamic, EvalAltResult, Map, Position};

use crate::config::ConfigError;
use crate::localenv::LocalEnvError;
use crate::storage::StorageError;

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Builds the error value scripts catch.
pub fn host_error(
    kind: &str,
    message: impl Into<String>,
    hint: Option<String>,
    status: Option<u16>,
) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), kind.into());
    map.insert("message".into(), message.into().into());
    map.insert(
        "hint".into(),
        hint.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    );
    map.insert(
        "status".into(),
        status
            .map(|s| Dynamic::from(s as i64))
            .unwrap_or(Dynamic::UNIT),
    );
    EvalAltResult::ErrorRuntime(map.into(), Position::NONE).into()
}

/// An argument the caller got wrong.
pub fn invalid(message: impl Into<String>) -> Box<EvalAltResult> {
    host_error("invalid", message, None, None)
}

/// Converts library errors at the script boundary.
pub trait IntoScript<T> {
    fn script(self) -> RhaiResult<T>;
}

impl<T> IntoScript<T> for Result<T, StorageError> {
    fn script(self) -> RhaiResult<T> {
        self.map_err(|e| host_error(e.kind(), e.to_string(), e.hint(), e.status()))
    }
}

impl<T> IntoScript<T> for Result<T, ConfigError> {
    fn script(self) -> RhaiResult<T> {
        self.map_err(|e| {
            let hint = match &e {
                ConfigError::UnknownAccount { .. } => Some(
                    "add it to the accounts file (see amsplay.example.toml), or use one of the names listed".to_string(),
                ),
                _ => None,
            };
            host_error("config", e.to_string(), hint, None)
        })
    }
}

impl<T> IntoScript<T> for Result<T, LocalEnvError> {
    fn script(self) -> RhaiResult<T> {
        self.map_err(|e| host_error("local_env", e.to_string(), None, None))
    }
}

impl<T> IntoScript<T> for Result<T, crate::ams::client::AmsError> {
    fn script(self) -> RhaiResult<T> {
        self.map_err(|e| {
            let hint = match &e {
                crate::ams::client::AmsError::Unreachable { .. } => Some(
                    "is the Media Services emulator running? For the local environment run `amsplay local status`".to_string(),
                ),
                crate::ams::client::AmsError::Auth { .. } => {
                    Some("check media_account and the key in the accounts file".to_string())
                }
                _ => None,
            };
            host_error(e.kind(), e.to_string(), hint, e.status())
        })
    }
}

impl<T> IntoScript<T> for Result<T, crate::replicate::ReplicateError> {
    fn script(self) -> RhaiResult<T> {
        use crate::replicate::ReplicateError;
        self.or_else(|e| match e {
            ReplicateError::Media(e) => Err(e).script(),
            ReplicateError::Storage(e) => Err(e).script(),
            e @ ReplicateError::NotCopied { .. } => Err(host_error(
                "copy_incomplete",
                e.to_string(),
                Some(
                    "run it again: the copy resumes, and blobs already identical are skipped"
                        .into(),
                ),
                None,
            )),
            e @ ReplicateError::LocatorTaken { .. } => {
                Err(host_error("conflict", e.to_string(), None, Some(409)))
            }
        })
    }
}
