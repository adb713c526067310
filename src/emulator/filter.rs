//! `$filter` as OData v3 clients of Media Services wrote it: comparisons (`eq`, `ne`, `gt`,
//! `ge`, `lt`, `le`) joined by `and`/`or`, `not`, parentheses, the string functions
//! `startswith`, `endswith` and `substringof`, and literals (`'text'` with `''` for a quote,
//! numbers, `true`/`false`/`null`, `datetime'…'`, `guid'…'`), evaluated over wire JSON.

use serde_json::Value;

use crate::ams::model::{lenient, parse_date};

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare(Operand, Op, Operand),
    /// `startswith(a, b)`, `endswith(a, b)`, `substringof(needle, haystack)`.
    Call(Function, Operand, Operand),
    /// A bare boolean operand (`IsPrimary`, `true`).
    Truth(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Function {
    StartsWith,
    EndsWith,
    SubstringOf,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Property(String),
    Literal(Literal),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
    Date(time::OffsetDateTime),
}

/// Deepest nesting of parentheses and `not` accepted (a hostile filter cannot exhaust the stack).
const MAX_DEPTH: usize = 32;

impl Filter {
    /// Parses a `$filter`; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, at: 0 };
        let f = p.or(0)?;
        match p.peek() {
            None => Ok(f),
            Some(t) => Err(format!("unexpected {t:?} after a complete condition")),
        }
    }

    /// Whether `entity` (wire JSON) passes.
    pub fn matches(&self, entity: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(entity) && b.matches(entity),
            Filter::Or(a, b) => a.matches(entity) || b.matches(entity),
            Filter::Not(f) => !f.matches(entity),
            Filter::Truth(o) => matches!(resolve(o, entity), Resolved::Bool(true)),
            Filter::Compare(a, op, b) => compare(&resolve(a, entity), *op, &resolve(b, entity)),
            Filter::Call(f, a, b) => {
                let (Resolved::Text(a), Resolved::Text(b)) =
                    (resolve(a, entity), resolve(b, entity))
                else {
                    return false;
                };
                match f {
                    Function::StartsWith => a.starts_with(&b),
                    Function::EndsWith => a.ends_with(&b),
                    Function::SubstringOf => b.contains(&a),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Typed(String, String),
    Open,
    Close,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                out.push(Token::Text(quoted(&mut chars, s, i)?));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || "(),'".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                // `datetime'…'`, `guid'…'`: a typed literal.
                if matches!(chars.peek(), Some((_, '\''))) {
                    let (j, _) = chars.next().expect("peeked");
                    let text = quoted(&mut chars, s, j)?;
                    out.push(Token::Typed(word.to_ascii_lowercase(), text));
                } else {
                    out.push(Token::Word(word));
                }
            }
        }
    }
    Ok(out)
}

/// The rest of a quoted string after its opening quote (at byte `start`), `''` as a quote.
fn quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    s: &str,
    start: usize,
) -> Result<String, String> {
    let mut text = String::new();
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                text.push('\'');
            } else {
                return Ok(text);
            }
        } else {
            text.push(c);
        }
    }
    Err(format!(
        "the string starting at {start} is not closed: {}",
        &s[start..]
    ))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn or(&mut self, depth: usize) -> Result<Filter, String> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, String> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} deep"));
        }
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or(depth + 1)?;
            return match self.next() {
                Some(Token::Close) => Ok(inner),
                other => Err(format!("expected ')', found {other:?}")),
            };
        }
        // A function call: startswith(Name, 'x').
        if let (Some(Token::Word(w)), Some(Token::Open)) =
            (self.tokens.get(self.at), self.tokens.get(self.at + 1))
        {
            let f = match w.to_ascii_lowercase().as_str() {
                "startswith" => Function::StartsWith,
                "endswith" => Function::EndsWith,
                "substringof" => Function::SubstringOf,
                other => return Err(format!("the function '{other}' is not supported")),
            };
            self.at += 2;
            let a = self.operand()?;
            if self.next() != Some(Token::Comma) {
                return Err("a function takes two arguments separated by ','".into());
            }
            let b = self.operand()?;
            if self.next() != Some(Token::Close) {
                return Err("expected ')' after a function's arguments".into());
            }
            let call = Filter::Call(f, a, b);
            // `startswith(Name,'x') eq true`
            return match self.peek() {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("eq") => {
                    self.at += 1;
                    Ok(match self.operand()? {
                        Operand::Literal(Literal::Bool(false)) => Filter::Not(Box::new(call)),
                        _ => call,
                    })
                }
                _ => Ok(call),
            };
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "eq" => Some(Op::Eq),
                "ne" => Some(Op::Ne),
                "gt" => Some(Op::Gt),
                "ge" => Some(Op::Ge),
                "lt" => Some(Op::Lt),
                "le" => Some(Op::Le),
                _ => None,
            },
            _ => None,
        };
        match op {
            Some(op) => {
                self.at += 1;
                Ok(Filter::Compare(left, op, self.operand()?))
            }
            None => Ok(Filter::Truth(left)),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Text(t)) => Ok(Operand::Literal(Literal::Text(t))),
            Some(Token::Typed(kind, text)) => match kind.as_str() {
                "datetime" | "datetimeoffset" => parse_date(&text)
                    .map(|d| Operand::Literal(Literal::Date(d)))
                    .ok_or_else(|| format!("datetime'{text}' is not a date")),
                "guid" => Ok(Operand::Literal(Literal::Text(text))),
                other => Err(format!("{other}'…' is not a literal this service reads")),
            },
            Some(Token::Word(w)) => Ok(Operand::Literal(match w.as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                _ => match w.trim_end_matches(['L', 'M', 'd', 'f', 'm']).parse::<f64>() {
                    Ok(n) if n.is_finite() => Literal::Number(n),
                    _ if w
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '/') =>
                    {
                        return Ok(Operand::Property(w));
                    }
                    _ => return Err(format!("'{w}' is neither a property nor a value")),
                },
            })),
            other => Err(format!("expected a property or a value, found {other:?}")),
        }
    }
}

/// An operand's value for one entity.
#[derive(Debug, PartialEq)]
enum Resolved {
    Text(String),
    Number(f64),
    Bool(bool),
    Date(time::OffsetDateTime),
    Null,
}

fn resolve(o: &Operand, entity: &Value) -> Resolved {
    match o {
        Operand::Literal(Literal::Text(t)) => Resolved::Text(t.clone()),
        Operand::Literal(Literal::Number(n)) => Resolved::Number(*n),
        Operand::Literal(Literal::Bool(b)) => Resolved::Bool(*b),
        Operand::Literal(Literal::Date(d)) => Resolved::Date(*d),
        Operand::Literal(Literal::Null) => Resolved::Null,
        Operand::Property(p) => match entity.get(p) {
            None | Some(Value::Null) => Resolved::Null,
            Some(Value::Bool(b)) => Resolved::Bool(*b),
            Some(Value::Number(n)) => Resolved::Number(n.as_f64().unwrap_or(f64::NAN)),
            Some(Value::String(s)) => Resolved::Text(s.clone()),
            Some(_) => Resolved::Null,
        },
    }
}

fn compare(a: &Resolved, op: Op, b: &Resolved) -> bool {
    use std::cmp::Ordering;
    let order: Option<Ordering> = match (a, b) {
        (Resolved::Null, Resolved::Null) => Some(Ordering::Equal),
        (Resolved::Null, _) | (_, Resolved::Null) => None,
        (Resolved::Text(x), Resolved::Text(y)) => Some(x.cmp(y)),
        (Resolved::Bool(x), Resolved::Bool(y)) => Some(x.cmp(y)),
        (Resolved::Date(x), Resolved::Date(y)) => Some(x.cmp(y)),
        // Dates travel as text; numbers sometimes as text (ContentFileSize).
        (Resolved::Text(t), Resolved::Date(d)) => parse_date(t).map(|x| x.cmp(d)),
        (Resolved::Date(d), Resolved::Text(t)) => parse_date(t).map(|y| d.cmp(&y)),
        (x, y) => match (number(x), number(y)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    match (op, order) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
    }
}

fn number(r: &Resolved) -> Option<f64> {
    match r {
        Resolved::Number(n) => Some(*n),
        Resolved::Text(t) => lenient::number(&Value::String(t.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: &str, entity: Value) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&entity)
    }

    #[test]
    fn what_clients_of_the_service_wrote() {
        let asset = json!({"Id": "nb:cid:UUID:1", "Name": "Big Buck Bunny", "State": 0,
            "Options": 1, "Created": "2026-11-21T22:40:00.0000000Z", "AlternateId": null});
        assert!(m("Name eq 'Big Buck Bunny'", asset.clone()));
        assert!(m("Id eq 'nb:cid:UUID:1' and State eq 0", asset.clone()));
        assert!(m("Name eq 'x' or Options ge 1", asset.clone()));
        assert!(!m("not (Options gt 0)", asset.clone()));
        assert!(m("startswith(Name, 'Big')", asset.clone()));
        assert!(m("startswith(Name,'Big') eq true", asset.clone()));
        assert!(!m("startswith(Name,'Big') eq false", asset.clone()));
        assert!(m("substringof('Buck', Name)", asset.clone()));
        assert!(m("endswith(Name, 'Bunny')", asset.clone()));
        assert!(m("Created gt datetime'2026-11-21T00:00:00'", asset.clone()));
        assert!(!m(
            "Created lt datetime'2026-11-21T00:00:00Z'",
            asset.clone()
        ));
        assert!(m("AlternateId eq null", asset.clone()));
        assert!(m(
            "(Name eq 'a' or Name eq 'Big Buck Bunny') and State le 0",
            asset.clone()
        ));
        let file = json!({"ContentFileSize": "3186542", "IsPrimary": true, "Name": "it''s"});
        assert!(m("ContentFileSize gt 1000000", file.clone()));
        assert!(m("IsPrimary", file.clone()));
        assert!(m("Name eq 'it''''s'", file));
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, says) in [
            ("Name eq 'open", "not closed"),
            ("Name eq", "expected a property or a value"),
            ("tolower(Name) eq 'x'", "tolower"),
            ("(Name eq 'x'", "expected ')'"),
            ("Name eq 'x' garbage", "unexpected"),
            ("Created gt datetime'soon'", "not a date"),
        ] {
            let e = Filter::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let deep = format!("{}Name eq 'x'{}", "(".repeat(100), ")".repeat(100));
        assert!(Filter::parse(&deep).unwrap_err().contains("nested"));
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn no_filter_panics(text in "\\PC{0,60}", chosen in "[()',a-zA-Z0-9 ]{0,60}") {
            let e = json!({"Name": "x", "State": 1});
            for t in [text, chosen] {
                if let Ok(f) = Filter::parse(&t) {
                    let _ = f.matches(&e);
                }
            }
        }
    }
}
