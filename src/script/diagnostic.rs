//! Errors as people read them: `file:line:col: message`, a hint, the source line and a caret.

use std::fmt;

use rhai::{Dynamic, EvalAltResult, ParseError, Position};

/// A located, printable error from a playbook or REPL input.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
    source_line: Option<String>,
}

impl Diagnostic {
    /// From a syntax error.
    pub fn from_parse(err: &ParseError, file: &str, source: &str) -> Self {
        Self::at(
            file,
            source,
            err.position(),
            err.err_type().to_string(),
            None,
        )
    }

    /// From a runtime error; nested function-call errors point at the innermost failing call.
    pub fn from_eval(err: &EvalAltResult, file: &str, source: &str) -> Self {
        let mut context = Vec::new();
        let mut cur = err;
        let mut pos = err.position();
        loop {
            match cur {
                EvalAltResult::ErrorInFunctionCall(name, _, inner, p) => {
                    if !name.starts_with("anon$") {
                        context.push(format!("in {name}()"));
                    }
                    if !p.is_none() {
                        pos = *p;
                    }
                    cur = inner;
                }
                EvalAltResult::ErrorInModule(_, inner, p) => {
                    if !p.is_none() {
                        pos = *p;
                    }
                    cur = inner;
                }
                _ => break,
            }
        }
        if !cur.position().is_none() {
            pos = cur.position();
        }
        let (mut message, hint) = match cur {
            EvalAltResult::ErrorRuntime(value, _) => runtime_message(value),
            EvalAltResult::ErrorTerminated(why, _) => (format!("stopped ({why})"), None),
            EvalAltResult::ErrorDataTooLarge(..) => (
                strip_position(&cur.to_string(), cur.position()),
                Some("the playbook's data outgrew its limit (a string, array or map that keeps growing?); raise `amsplay run --max-memory MB` if it is meant to".into()),
            ),
            EvalAltResult::ErrorTooManyOperations(..) => (
                strip_position(&cur.to_string(), cur.position()),
                Some("the playbook ran more operations than `--max-operations` allows (a loop that never ends?)".into()),
            ),
            other => (strip_position(&other.to_string(), other.position()), None),
        };
        if !context.is_empty() {
            message = format!("{message} ({})", context.join(", "));
        }
        Self::at(file, source, pos, message, hint)
    }

    fn at(file: &str, source: &str, pos: Position, message: String, hint: Option<String>) -> Self {
        let line = pos.line().unwrap_or(0);
        let col = pos.position().unwrap_or(0);
        let source_line = (line > 0)
            .then(|| source.lines().nth(line - 1).map(str::to_string))
            .flatten();
        Self {
            file: file.to_string(),
            line,
            col,
            message,
            hint,
            source_line,
        }
    }
}

/// A host error is a map #{kind, message, hint}; a `throw` is any value.
fn runtime_message(value: &Dynamic) -> (String, Option<String>) {
    if let Some(map) = value.read_lock::<rhai::Map>() {
        if let Some(msg) = map.get("message") {
            let hint = map
                .get("hint")
                .filter(|h| !h.is_unit())
                .map(|h| h.to_string());
            return (msg.to_string(), hint);
        }
    }
    let text = value.to_string();
    if text.is_empty() {
        ("runtime error".into(), None)
    } else {
        (text, None)
    }
}

fn strip_position(text: &str, pos: Position) -> String {
    if pos.is_none() {
        return text.to_string();
    }
    text.strip_suffix(&format!(" ({pos})"))
        .unwrap_or(text)
        .to_string()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            writeln!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )?;
        } else {
            writeln!(f, "{}: {}", self.file, self.message)?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  hint: {hint}")?;
        }
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {src}")?;
            // The caret lines up with the column, counting characters (tabs kept as tabs).
            let lead: String = src
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {lead}^")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_column() {
        let engine = rhai::Engine::new();
        let src = "let x = 1;\nlet y = x +;\n";
        let err = engine.compile(src).unwrap_err();
        let d = Diagnostic::from_parse(&err, "t.rhai", src);
        let text = d.to_string();
        assert!(text.starts_with("t.rhai:2:"), "{text}");
        assert!(text.contains("2 | let y = x +;"), "{text}");
        let caret = text.lines().last().unwrap();
        assert_eq!(caret.find('^').unwrap() - 4, d.col - 1, "{text}");
    }

    #[test]
    fn throw_in_function_points_inside() {
        let engine = rhai::Engine::new();
        let src = "fn f() {\n  throw \"boom\";\n}\nf();\n";
        let err = engine.run(src).unwrap_err();
        let d = Diagnostic::from_eval(&err, "t.rhai", src);
        assert_eq!(d.line, 2, "{d}");
        assert!(d.message.starts_with("boom"), "{d}");
    }
}
