//! `help()`, REPL completion and the README's API table, all generated from the engine's own
//! function metadata (the docs given at registration), so they cannot drift apart.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rhai::Engine;

use super::engine::func;

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
        if docs.is_empty() || name.starts_with("get$") || name.starts_with("set$") {
            continue;
        }
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
        let sig = f["signature"].as_str().unwrap_or(name).to_string();
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
