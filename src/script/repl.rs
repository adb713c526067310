//! The interactive loop: history, multi-line input, tab completion, `help()`.

use std::borrow::Cow;
use std::path::PathBuf;

use rhai::{Dynamic, Engine, Scope, AST};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use super::diagnostic::Diagnostic;
use super::help;

struct ReplHelper {
    names: Vec<String>,
}

impl Completer for ReplHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let word = &line[start..pos];
        let found = self
            .names
            .iter()
            .filter(|n| n.starts_with(word))
            .map(|n| Pair {
                display: n.clone(),
                replacement: n.clone(),
            })
            .collect();
        Ok((start, found))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if is_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for ReplHelper {}

/// Input that needs more lines: unbalanced brackets, or a statement cut short.
pub fn is_incomplete(input: &str) -> bool {
    let mut depth = 0i32;
    let mut in_str: Option<char> = None;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => in_str = None,
            (Some(_), _) => {}
            (None, '"' | '`' | '\'') => in_str = Some(c),
            (None, '{' | '(' | '[') => depth += 1,
            (None, '}' | ')' | ']') => depth -= 1,
            _ => {}
        }
    }
    if depth > 0 || in_str == Some('`') {
        return true;
    }
    matches!(
        Engine::new_raw()
            .compile(input)
            .map_err(|e| e.err_type().clone()),
        Err(rhai::ParseErrorType::UnexpectedEOF)
    )
}

fn history_path() -> PathBuf {
    std::env::var_os("AMSPLAY_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".amsplay_history")))
        .unwrap_or_else(|| PathBuf::from(".amsplay_history"))
}

/// Runs the REPL until end of input (Ctrl-D) or `exit`.
/// The interactive loop. Ctrl-C while a line runs stops that line (`stop` is reset after
/// each); SIGTERM and SIGHUP end the REPL once the line being read or run is done.
pub fn run(engine: &Engine, banner: &str, stop: &super::Stop) -> anyhow::Result<()> {
    let mut rl: Editor<ReplHelper, DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(ReplHelper {
        names: help::completions(engine),
    }));
    let history = history_path();
    let _ = rl.load_history(&history);
    println!("{banner}");
    println!("Type help() for the functions, help(\"name\") for one; Ctrl-D or exit to leave.");
    let mut scope = Scope::new();
    scope.push_constant("ARGS", rhai::Array::new());
    let mut functions = AST::empty();
    loop {
        let line = rl.readline("amsplay> ");
        if stop.requested().is_some_and(|(_, code)| code != 130) {
            break;
        }
        stop.reset();
        let input = match line {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let text = input.trim();
        if text.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(input.as_str());
        if matches!(text, "exit" | "quit" | ":q") {
            break;
        }
        let ast = match engine.compile_with_scope(&scope, &input) {
            Ok(ast) => ast,
            Err(e) => {
                eprint!("{}", Diagnostic::from_parse(&e, "<repl>", &input));
                continue;
            }
        };
        let merged = functions.merge(&ast);
        match engine.eval_ast_with_scope::<Dynamic>(&mut scope, &merged) {
            Ok(v) if !v.is_unit() => println!("=> {v:?}"),
            Ok(_) => {}
            Err(e) => eprint!("{}", Diagnostic::from_eval(&e, "<repl>", &input)),
        }
        if stop.requested().is_some_and(|(_, code)| code != 130) {
            break;
        }
        functions = merged;
        functions.clear_statements();
    }
    let _ = rl.save_history(&history);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_incomplete;

    #[test]
    fn multi_line_detection() {
        assert!(is_incomplete("fn f() {"));
        assert!(is_incomplete("let x = [1,"));
        assert!(!is_incomplete("let x = 1;"));
        assert!(!is_incomplete("let s = \"{\";"));
    }
}
