//! Label and field selectors: the `labelSelector` grammar of Kubernetes (`k=v`, `k==v`, `k!=v`,
//! `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`, comma = AND), `metav1.LabelSelector`
//! objects, and `fieldSelector` (`=`, `==`, `!=`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// Why a selector string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// One operator of a label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement: key, operator and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &dyn Fn(&str) -> Option<String>) -> bool {
        let value = labels(&self.key);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.contains(&v)),
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| !self.values.contains(&v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = || {
            let mut sorted = self.values.clone();
            sorted.sort();
            sorted.join(",")
        };
        match self.op {
            Op::Equals => write!(f, "{}={}", self.key, self.values[0]),
            Op::NotEquals => write!(f, "{}!={}", self.key, self.values[0]),
            Op::In => write!(f, "{} in ({})", self.key, values()),
            Op::NotIn => write!(f, "{} notin ({})", self.key, values()),
            Op::Exists => write!(f, "{}", self.key),
            Op::DoesNotExist => write!(f, "!{}", self.key),
            Op::GreaterThan => write!(f, "{}>{}", self.key, self.values[0]),
            Op::LessThan => write!(f, "{}<{}", self.key, self.values[0]),
        }
    }
}

/// A conjunction of requirements. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl LabelSelector {
    /// Everything matches.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parse the `labelSelector` query parameter grammar.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut lexer = Lexer::new(input);
        let mut requirements = Vec::new();
        loop {
            lexer.skip_ws();
            if lexer.at_end() {
                if !requirements.is_empty() && lexer.trailing_comma {
                    return Err(SelectorError(format!(
                        "found '', expected: identifier in {input:?}"
                    )));
                }
                break;
            }
            requirements.push(parse_requirement(&mut lexer, input)?);
            lexer.skip_ws();
            if lexer.at_end() {
                break;
            }
            if !lexer.eat(',') {
                return Err(SelectorError(format!(
                    "found '{}', expected: ',' or 'end of string' in {input:?}",
                    lexer.rest()
                )));
            }
            lexer.trailing_comma = true;
        }
        Ok(LabelSelector { requirements })
    }

    /// The selector of a `metav1.LabelSelector` object (`matchLabels` and `matchExpressions`).
    /// A null selector matches nothing in Kubernetes; callers decide that case themselves.
    pub fn from_object(selector: &Value) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            let mut sorted: Vec<_> = labels.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            for (key, value) in sorted {
                requirements.push(Requirement {
                    key: key.clone(),
                    op: Op::Equals,
                    values: vec![value.as_str().unwrap_or_default().to_string()],
                });
            }
        }
        if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
            for expr in exprs {
                let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
                let operator = expr
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let values: Vec<String> = expr
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let op = match operator {
                    "In" => Op::In,
                    "NotIn" => Op::NotIn,
                    "Exists" => Op::Exists,
                    "DoesNotExist" => Op::DoesNotExist,
                    other => {
                        return Err(SelectorError(format!(
                            "{other:?} is not a valid label selector operator"
                        )));
                    }
                };
                if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
                    return Err(SelectorError(format!(
                        "for 'in', 'notin' operators, values set can't be empty (key {key})"
                    )));
                }
                requirements.push(Requirement {
                    key: key.to_string(),
                    op,
                    values,
                });
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether a label map (JSON object of strings) satisfies every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let lookup = |key: &str| {
            labels
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        self.requirements.iter().all(|r| r.matches(&lookup))
    }

    /// Whether a plain label map satisfies every requirement.
    pub fn matches_map(&self, labels: &BTreeMap<String, String>) -> bool {
        let lookup = |key: &str| labels.get(key).cloned();
        self.requirements.iter().all(|r| r.matches(&lookup))
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    trailing_comma: bool,
    _input: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Self {
        Lexer {
            chars: input.chars().collect(),
            pos: 0,
            trailing_comma: false,
            _input: input,
        }
    }
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn rest(&self) -> String {
        self.chars[self.pos..].iter().collect()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_str(&mut self, s: &str) -> bool {
        let len = s.chars().count();
        if self.chars.len() >= self.pos + len
            && self.chars[self.pos..self.pos + len]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += len;
            true
        } else {
            false
        }
    }
    /// Identifiers and values: anything up to a delimiter.
    fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')' | '<' | '>') {
                break;
            }
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }
}

fn parse_requirement(lexer: &mut Lexer<'_>, input: &str) -> Result<Requirement, SelectorError> {
    lexer.trailing_comma = false;
    if lexer.eat('!') {
        lexer.skip_ws();
        let key = lexer.word();
        check_key(&key, input)?;
        return Ok(Requirement {
            key,
            op: Op::DoesNotExist,
            values: vec![],
        });
    }
    let key = lexer.word();
    check_key(&key, input)?;
    lexer.skip_ws();
    if lexer.at_end() || lexer.peek() == Some(',') {
        return Ok(Requirement {
            key,
            op: Op::Exists,
            values: vec![],
        });
    }
    let op = if lexer.eat_str("==") || lexer.eat('=') {
        Op::Equals
    } else if lexer.eat_str("!=") {
        Op::NotEquals
    } else if lexer.eat('>') {
        Op::GreaterThan
    } else if lexer.eat('<') {
        Op::LessThan
    } else if lexer.eat_str("notin") {
        Op::NotIn
    } else if lexer.eat_str("in") {
        Op::In
    } else {
        return Err(SelectorError(format!(
            "found '{}', expected: in, notin, =, ==, !=, gt, lt in {input:?}",
            lexer.rest()
        )));
    };
    lexer.skip_ws();
    let values = match op {
        Op::In | Op::NotIn => {
            if !lexer.eat('(') {
                return Err(SelectorError(format!(
                    "found '{}', expected: '(' in {input:?}",
                    lexer.rest()
                )));
            }
            let mut values = Vec::new();
            loop {
                lexer.skip_ws();
                let value = lexer.word();
                check_value(&value, input)?;
                values.push(value);
                lexer.skip_ws();
                if lexer.eat(')') {
                    break;
                }
                if !lexer.eat(',') {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',', or ')' in {input:?}",
                        lexer.rest()
                    )));
                }
            }
            values
        }
        Op::GreaterThan | Op::LessThan => {
            let value = lexer.word();
            if value.parse::<i64>().is_err() {
                return Err(SelectorError(format!(
                    "for 'Gt', 'Lt' operators, the value must be an integer in {input:?}"
                )));
            }
            vec![value]
        }
        _ => {
            let value = lexer.word();
            check_value(&value, input)?;
            vec![value]
        }
    };
    Ok(Requirement { key, op, values })
}

fn check_key(key: &str, input: &str) -> Result<(), SelectorError> {
    if key.is_empty() {
        return Err(SelectorError(format!(
            "found '', expected: identifier in {input:?}"
        )));
    }
    crate::selector::validate_qualified_name(key)
        .map_err(|why| SelectorError(format!("invalid label key {key:?}: {why}")))
}

fn check_value(value: &str, _input: &str) -> Result<(), SelectorError> {
    validate_label_value(value)
        .map_err(|why| SelectorError(format!("invalid label value: {value:?}: {why}")))
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A label value: at most 63 characters, alphanumerics with `-_.` inside, or empty.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    let ok = value.starts_with(is_alnum)
        && value.ends_with(is_alnum)
        && value
            .chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into())
    }
}

/// A qualified name (label and annotation keys): optional DNS-subdomain prefix and `/`, then a
/// name of at most 63 characters.
pub fn validate_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        crate::selector::validate_dns_subdomain(prefix).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let ok = name.starts_with(is_alnum)
        && name.ends_with(is_alnum)
        && name
            .chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into())
    }
}

/// RFC 1123 subdomain: lower-case alphanumerics, `-` and `.`, at most 253 characters.
pub fn validate_dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(lower_alnum)
                && label.ends_with(lower_alnum)
                && label.chars().all(|c| lower_alnum(c) || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
    }
}

/// RFC 1123 label: lower-case alphanumerics and `-`, at most 63 characters.
pub fn validate_dns_label(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !name.is_empty()
        && name.starts_with(lower_alnum)
        && name.ends_with(lower_alnum)
        && name.chars().all(|c| lower_alnum(c) || c == '-');
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
    }
}

/// One `fieldSelector` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    /// true for `!=`
    pub negated: bool,
}

/// A conjunction of field terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse `a=b,c!=d` (with `\,`, `\=` and `\\` escapes in values).
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_unescaped(input, ',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some((f, v)) = split_op(term, "!=") {
                (f, v, true)
            } else if let Some((f, v)) = split_op(term, "==") {
                (f, v, false)
            } else if let Some((f, v)) = split_op(term, "=") {
                (f, v, false)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                value: unescape(value.trim()),
                negated,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value a `metadata.name=` term pins, if any (lets watches and lists use one key).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Whether the object's field values (looked up by name) satisfy every term.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let value = lookup(&r.field).unwrap_or_default();
            (value == r.value) != r.negated
        })
    }
}

fn split_unescaped(input: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Split at the first unescaped occurrence of `op`.
fn split_op<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i + op.len() <= bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if &term[i..i + op.len()] == op {
            return Some((&term[..i], &term[i + op.len()..]));
        }
        i += 1;
    }
    None
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn grammar_table() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web, db)", true),
            ("app notin (web,db)", false),
            ("missing notin (a)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n<4", false),
            (" app = web , tier in (front) ", true),
            ("app=", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.matches(Some(&l)), want, "{input}");
        }
    }

    #[test]
    fn bad_selectors_fail() {
        for bad in [
            "app in web",
            "=x",
            "a,",
            "app=web)",
            "n>x",
            "bad key!=1",
            "a=b c",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
        // Empty values are valid label values, as in Kubernetes.
        assert_eq!(
            LabelSelector::parse("app==").unwrap().requirements[0].values,
            vec![""]
        );
        assert_eq!(
            LabelSelector::parse("app in ()").unwrap().requirements[0].values,
            vec![""]
        );
    }

    #[test]
    fn label_selector_objects() {
        let sel = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        }))
        .unwrap();
        assert_eq!(sel.to_string(), "app=web,tier notin (db)");
        assert!(sel.matches(Some(&labels(json!({"app": "web"})))));
        assert!(!sel.matches(Some(&labels(json!({"app": "web", "tier": "db"})))));
        assert!(
            LabelSelector::from_object(
                &json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn field_selectors() {
        let sel = FieldSelector::parse("metadata.name=web,status.phase!=Running").unwrap();
        assert_eq!(sel.exact("metadata.name"), Some("web"));
        let lookup = |phase: &'static str| {
            move |f: &str| match f {
                "metadata.name" => Some("web".to_string()),
                "status.phase" => Some(phase.to_string()),
                _ => None,
            }
        };
        assert!(sel.matches(lookup("Pending")));
        assert!(!sel.matches(lookup("Running")));
        let escaped = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(escaped.requirements[0].value, "a,b");
        assert!(FieldSelector::parse("nonsense").is_err());
    }

    #[test]
    fn names() {
        assert!(validate_dns_subdomain("my.app-1").is_ok());
        assert!(validate_dns_subdomain("My").is_err());
        assert!(validate_dns_label("a.b").is_err());
        assert!(validate_qualified_name("app.kubernetes.io/name").is_ok());
        assert!(validate_qualified_name("/x").is_err());
        assert!(validate_label_value("x-").is_err());
    }
}
