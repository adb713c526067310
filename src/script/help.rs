//! `help()`, REPL completion and the README's API table, all generated from the engine's own
//! function metadata (the docs given at registration), so they cannot drift apart.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rhai::Engine;

use super::host::func;

/// One documented function (all overloads of a name share an entry).
#[derive(Debug, Clone, Default)]
pub struct FnDoc {
    pub name: String,
    pub signatures: Vec<String>,
    pub doc: String,
}

impl FnDoc {
    /// The first line of the doc.
    pub fn summary(&self) -> &str {
        self.doc.lines().next().unwrap_or_default()
    }
}

/// Documented functions by name, read from the engine's metadata.
pub fn index(engine: &Engine) -> BTreeMap<String, FnDoc> {
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let mut out: BTreeMap<String, FnDoc> = BTreeMap::new();
    for f in value["functions"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or_default();
        let docs: Vec<&str> = f["docComments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .collect();
        if docs.is_empty() {
            continue;
        }
        // Types as playbooks see them, whether registered by hand or by `#[export_module]`.
        let params: Vec<(String, String)> = f["params"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let name = p["name"].as_str().unwrap_or("_").to_string();
                (name, script_type(p["type"].as_str().unwrap_or("?")))
            })
            .collect();
        let returns = script_type(f["returnType"].as_str().unwrap_or("()"));
        // A property is listed as `Type.prop`, its signature as `value.prop -> Type`.
        let (name, signature) = match name.strip_prefix("get$") {
            Some(prop) => {
                let this = params.first().map(|p| p.1.as_str()).unwrap_or("value");
                (
                    format!("{this}.{prop}"),
                    format!("{}.{prop} -> {returns}", this.to_lowercase()),
                )
            }
            None => {
                let list = params
                    .iter()
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sig = if returns == "()" {
                    format!("{name}({list})")
                } else {
                    format!("{name}({list}) -> {returns}")
                };
                (name.to_string(), sig)
            }
        };
        let name = name.as_str();
        let doc = docs
            .iter()
            .flat_map(|d| d.lines())
            .map(|l| l.trim_start_matches("///").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let entry = out.entry(name.to_string()).or_insert_with(|| FnDoc {
            name: name.to_string(),
            ..Default::default()
        });
        let sig = signature;
        // Overloads may carry different docs; the first signature in sort order decides, so
        // the output does not depend on registration order.
        if entry.doc.is_empty() || entry.signatures.iter().all(|s| sig < *s) {
            entry.doc = doc;
        }
        if !entry.signatures.contains(&sig) {
            entry.signatures.push(sig);
        }
    }
    for d in out.values_mut() {
        d.signatures.sort();
    }
    out
}

/// A Rust type as the metadata spells it, as playbooks see it: no references, `&str` and
/// `ImmutableString` as `String`, a fallible function by what it returns, `Days` as `number`.
fn script_type(t: &str) -> String {
    let t = t
        .trim()
        .trim_start_matches("&mut ")
        .trim_start_matches('&')
        .trim();
    let t = t.trim_start_matches("rhai::");
    let t = t
        .strip_prefix("RhaiResult<")
        .or_else(|| t.strip_prefix("Result<"))
        .map(|inner| {
            let inner = inner.strip_suffix('>').unwrap_or(inner);
            // `Result<T, Box<EvalAltResult>>`: T, the first of the two.
            inner.split(", Box<").next().unwrap_or(inner).trim()
        })
        .unwrap_or(t);
    match t.trim_start_matches("rhai::") {
        "str" | "ImmutableString" => "String".into(),
        "Days" => "number".into(),
        "INT" => "i64".into(),
        "FLOAT" => "f64".into(),
        "" => "()".into(),
        t => t.to_string(),
    }
}

/// Names for tab completion: documented functions plus Rhai keywords.
pub fn completions(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = index(engine).into_keys().collect();
    names.extend(
        [
            "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue",
            "return", "throw", "try", "catch", "print", "debug", "true", "false", "ARGS",
        ]
        .map(String::from),
    );
    names.sort();
    names.dedup();
    names
}

/// The API reference as a Markdown table (kept in the README, checked by a test).
pub fn markdown(engine: &Engine) -> String {
    let mut out = String::from("| function | what it does |\n|---|---|\n");
    for d in index(engine).values() {
        let sigs = d
            .signatures
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join("<br>");
        let doc = d
            .doc
            .lines()
            .map(|l| l.replace('|', "\\|"))
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!("| {sigs} | {doc} |\n"));
    }
    out
}

fn overview(idx: &BTreeMap<String, FnDoc>) -> String {
    let width = idx.keys().map(String::len).max().unwrap_or(0);
    let mut out = String::from("amsplay functions (help(\"name\") for details and an example):\n");
    for d in idx.values() {
        out.push_str(&format!("  {:width$}  {}\n", d.name, d.summary()));
    }
    out
}

fn details(idx: &BTreeMap<String, FnDoc>, name: &str) -> String {
    match idx.get(name) {
        Some(d) => format!("{}\n\n{}\n", d.signatures.join("\n"), d.doc),
        None => {
            let near: Vec<&str> = idx
                .keys()
                .filter(|k| k.contains(name) || name.contains(k.as_str()))
                .map(String::as_str)
                .collect();
            if near.is_empty() {
                format!("no amsplay function named '{name}'; help() lists them all\n")
            } else {
                format!(
                    "no amsplay function named '{name}'; did you mean: {}?\n",
                    near.join(", ")
                )
            }
        }
    }
}

/// Registers `help()` and `help(name)`; call last, once every other function is registered.
pub fn install(engine: &mut Engine) {
    let idx: Arc<OnceLock<BTreeMap<String, FnDoc>>> = Arc::new(OnceLock::new());
    let i = idx.clone();
    func(
        "help",
        &["()"],
        "Lists every amsplay function with a one-line summary.\nExample: help();",
    )
    .register_into_engine(engine, move || {
        print!("{}", overview(i.get().expect("help index built")));
    });
    let i = idx.clone();
    func(
        "help",
        &["name: String", "()"],
        "Shows a function's signatures, what it does, and an example.\nExample: help(\"copy_blobs\");",
    )
    .register_into_engine(engine, move |name: &str| {
        print!("{}", details(i.get().expect("help index built"), name));
    });
    let _ = idx.set(index(engine));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (tokio::runtime::Runtime, Engine) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let host = super::super::Host::new(
            rt.handle().clone(),
            super::super::Stop::default(),
            crate::config::AccountsFile::default(),
            "none",
        );
        let engine = super::super::build_engine(host);
        (rt, engine)
    }

    /// Every function and property amsplay registers is documented, so `help()` and the
    /// README list it; a `register_fn`/`register_get` without docs fails here.
    #[test]
    fn help_lists_every_function_and_property() {
        let (_rt, engine) = engine();
        let json = engine.gen_fn_metadata_to_json(false).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let idx = index(&engine);
        for f in value["functions"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            // Rhai's own conventions for printing values are not part of the API.
            if ["to_string", "to_debug"].contains(&name) {
                continue;
            }
            let documented = f["docComments"].as_array().is_some_and(|d| !d.is_empty());
            assert!(
                documented,
                "{} has no docs: register it with func()/getter()",
                f["signature"]
            );
            let listed = match name.strip_prefix("get$") {
                Some(prop) => format!(
                    "{}.{prop}",
                    script_type(f["params"][0]["type"].as_str().unwrap())
                ),
                None => name.to_string(),
            };
            assert!(idx.contains_key(&listed), "help() does not list {listed}");
        }
        for expected in [
            "Job.state",
            "Asset.files",
            "Locator.container",
            "copy_blobs",
        ] {
            assert!(idx.contains_key(expected), "{expected}");
        }
    }

    /// Signatures name types playbooks can see: registered types or Rhai's own.
    #[test]
    fn signatures_name_known_types() {
        let (_rt, engine) = engine();
        let known = [
            "Account", "Asset", "Locator", "Job", "Storage", "LocalEnv", "Player", "String", "i64",
            "f64", "bool", "number", "Map", "Array", "Dynamic", "()",
        ];
        let mut unknown = Vec::new();
        for d in index(&engine).values() {
            for sig in &d.signatures {
                let types = sig
                    .split(['(', ')', ','])
                    .filter_map(|part| part.split_once(": ").map(|(_, t)| t.trim()))
                    .chain(sig.rsplit_once("-> ").map(|(_, t)| t.trim()));
                for t in types {
                    if !known.contains(&t) {
                        unknown.push(format!("{sig}: {t:?}"));
                    }
                }
            }
        }
        assert!(unknown.is_empty(), "unknown types:\n{}", unknown.join("\n"));
    }
}
