//! Running a playbook file: compile (syntax errors are reported before anything runs), then run
//! with `ARGS` set to the playbook's arguments.

use std::path::Path;

use rhai::{Array, Dynamic, Engine, Scope};

use super::diagnostic::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read playbook {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Script(Diagnostic),
}

fn scope_with_args(args: &[String]) -> Scope<'static> {
    let mut scope = Scope::new();
    let args: Array = args.iter().cloned().map(Dynamic::from).collect();
    scope.push_constant("ARGS", args);
    scope
}

fn read(path: &Path) -> Result<String, RunError> {
    std::fs::read_to_string(path).map_err(|source| RunError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Compiles a playbook without running it.
pub fn check_file(engine: &Engine, path: &Path) -> Result<(), RunError> {
    let source = read(path)?;
    let name = path.display().to_string();
    engine
        .compile_with_scope(&scope_with_args(&[]), &source)
        .map(|_| ())
        .map_err(|e| RunError::Script(Diagnostic::from_parse(&e, &name, &source)))
}

/// Runs a playbook to the end.
pub fn run_file(engine: &Engine, path: &Path, args: &[String]) -> Result<(), RunError> {
    let source = read(path)?;
    let name = path.display().to_string();
    let mut scope = scope_with_args(args);
    let mut ast = engine
        .compile_with_scope(&scope, &source)
        .map_err(|e| RunError::Script(Diagnostic::from_parse(&e, &name, &source)))?;
    ast.set_source(name.as_str());
    engine
        .run_ast_with_scope(&mut scope, &ast)
        .map_err(|e| RunError::Script(Diagnostic::from_eval(&e, &name, &source)))
}
