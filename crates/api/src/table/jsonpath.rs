//! The part of client-go's JSONPath that CRD `additionalPrinterColumns` use: fields (`.spec.foo`,
//! `['a.b']`, `.a\.b`), wildcards (`.*`, `[*]`), indexes and slices (`[0]`, `[-1]`, `[1:3]`),
//! recursive descent (`..name`) and filters (`[?(@.type=="Ready")]`, `[?(@.ready)]`).
//!
//! Evaluation follows client-go with missing keys allowed: a missing field yields no result, while
//! type errors (indexing a map, an index out of range, comparing a string with a number) make the
//! whole evaluation fail, which the table shows as an empty cell.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed JSONPath expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    Recursive,
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: Option<i64>,
        /// `[i]` rather than `[i:j]`: the end is derived as `i + 1`.
        index: bool,
    },
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Step>,
    op: Op,
    right: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Exists,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    None,
    Path(Vec<Step>),
    Literal(Value),
}

/// Evaluation failed (as opposed to finding nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvalError;

impl JsonPath {
    /// Parse `.spec.replicas`, `{.spec.replicas}` or `$.spec.replicas`.
    pub(crate) fn parse(expr: &str) -> Result<Self, String> {
        let mut text = expr.trim();
        if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            text = inner.trim();
        }
        let text = text.strip_prefix('$').unwrap_or(text);
        let chars: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let steps = parse_steps(&chars, &mut pos)?;
        if pos != chars.len() {
            return Err(format!("unexpected {:?} in {expr:?}", chars[pos]));
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path reaches, in document order.
    pub(crate) fn find<'a>(&self, root: &'a Value) -> Result<Vec<&'a Value>, EvalError> {
        eval(&self.steps, vec![root])
    }
}

fn is_terminator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}')
}

/// Parse steps until the end of input or a character that cannot start a step (used for the
/// paths inside filters, which stop at an operator or the closing parenthesis).
fn parse_steps(chars: &[char], pos: &mut usize) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    // A leading bare name (`spec.foo`) reads as a field, as a courtesy.
    if chars.get(*pos).is_some_and(|&c| !is_terminator(c)) {
        steps.push(parse_field(chars, pos));
    }
    while let Some(&c) = chars.get(*pos) {
        match c {
            '.' if chars.get(*pos + 1) == Some(&'.') => {
                *pos += 2;
                steps.push(Step::Recursive);
                if chars.get(*pos).is_some_and(|&c| !is_terminator(c)) {
                    steps.push(parse_field(chars, pos));
                }
            }
            '.' => {
                *pos += 1;
                match chars.get(*pos) {
                    Some(&c) if !is_terminator(c) => steps.push(parse_field(chars, pos)),
                    Some('[') => {}
                    _ => return Err("expected a field name after '.'".into()),
                }
            }
            '[' => steps.push(parse_bracket(chars, pos)?),
            _ => break,
        }
    }
    Ok(steps)
}

/// A field name up to the next terminator; a backslash escapes the next character.
fn parse_field(chars: &[char], pos: &mut usize) -> Step {
    let mut name = String::new();
    while let Some(&c) = chars.get(*pos) {
        if c == '\\' {
            if let Some(&next) = chars.get(*pos + 1) {
                name.push(next);
            }
            *pos += 2;
            continue;
        }
        if is_terminator(c) {
            break;
        }
        name.push(c);
        *pos += 1;
    }
    if name == "*" {
        Step::Wildcard
    } else {
        Step::Field(name)
    }
}

/// `[...]` starting at `chars[*pos] == '['`.
fn parse_bracket(chars: &[char], pos: &mut usize) -> Result<Step, String> {
    let open = *pos;
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut end = None;
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            },
        }
    }
    let end = end.ok_or("unterminated '['")?;
    *pos = end + 1;
    let inner: String = chars[open + 1..end].iter().collect();
    let inner = inner.trim();
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(expr) = inner.strip_prefix('?') {
        let expr = expr.trim();
        let body = expr
            .strip_prefix('(')
            .and_then(|e| e.strip_suffix(')'))
            .ok_or("a filter must look like [?(...)]")?;
        return Ok(Step::Filter(Box::new(parse_filter(body)?)));
    }
    if let Some(name) = quoted(inner) {
        return Ok(Step::Field(name));
    }
    let parts: Vec<&str> = inner.split(':').collect();
    if parts.len() > 3 {
        return Err(format!("invalid array index {inner:?}"));
    }
    let number = |s: &str| -> Result<Option<i64>, String> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse()
                .map(Some)
                .map_err(|_| format!("invalid array index {inner:?}"))
        }
    };
    let start = number(parts[0])?;
    if parts.len() == 1 {
        if start.is_none() {
            return Err("empty array index".into());
        }
        return Ok(Step::Slice {
            start,
            end: None,
            step: None,
            index: true,
        });
    }
    Ok(Step::Slice {
        start,
        end: number(parts[1])?,
        step: match parts.get(2) {
            Some(s) => number(s)?,
            None => None,
        },
        index: false,
    })
}

/// The text of a `'...'` or `"..."` literal.
fn quoted(text: &str) -> Option<String> {
    let first = text.chars().next()?;
    if (first == '\'' || first == '"') && text.len() >= 2 && text.ends_with(first) {
        Some(text[1..text.len() - 1].to_string())
    } else {
        None
    }
}

/// `@.a.b == "x"`, `@.count > 2`, `@.ready`.
fn parse_filter(body: &str) -> Result<Filter, String> {
    let (left, op, right) = split_operator(body);
    let left = parse_operand(left)?;
    let Operand::Path(left) = left else {
        return Err(format!(
            "the left side of a filter must be a path: {body:?}"
        ));
    };
    if op == Op::Exists {
        return Ok(Filter {
            left,
            op,
            right: Operand::None,
        });
    }
    Ok(Filter {
        left,
        op,
        right: parse_operand(right)?,
    })
}

/// Split at the first comparison operator outside quotes.
fn split_operator(body: &str) -> (&str, Op, &str) {
    let bytes = body.as_bytes();
    let mut quote = None;
    for i in 0..bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None => {
                let two = body.get(i..i + 2).unwrap_or("");
                let (op, len) = match (two, c) {
                    ("==", _) => (Op::Eq, 2),
                    ("!=", _) => (Op::Ne, 2),
                    ("<=", _) => (Op::Le, 2),
                    (">=", _) => (Op::Ge, 2),
                    (_, b'<') => (Op::Lt, 1),
                    (_, b'>') => (Op::Gt, 1),
                    _ => continue,
                };
                return (&body[..i], op, &body[i + len..]);
            }
        }
    }
    (body, Op::Exists, "")
}

fn parse_operand(text: &str) -> Result<Operand, String> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix('@') {
        let chars: Vec<char> = path.chars().collect();
        let mut pos = 0;
        let steps = parse_steps(&chars, &mut pos)?;
        if pos != chars.len() {
            return Err(format!("invalid filter path {text:?}"));
        }
        return Ok(Operand::Path(steps));
    }
    if let Some(s) = quoted(text) {
        return Ok(Operand::Literal(Value::String(s)));
    }
    match text {
        "true" => return Ok(Operand::Literal(Value::Bool(true))),
        "false" => return Ok(Operand::Literal(Value::Bool(false))),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Operand::Literal(Value::from(i)));
    }
    if let Ok(f) = text.parse::<f64>() {
        return Ok(Operand::Literal(Value::from(f)));
    }
    Err(format!("unrecognized filter operand {text:?}"))
}

fn eval<'a>(steps: &[Step], input: Vec<&'a Value>) -> Result<Vec<&'a Value>, EvalError> {
    let mut current = input;
    for step in steps {
        let mut next = Vec::new();
        match step {
            Step::Field(name) => {
                for value in current {
                    if let Some(found) = value.as_object().and_then(|m| m.get(name)) {
                        next.push(found);
                    }
                }
            }
            Step::Wildcard => {
                for value in current {
                    match value {
                        Value::Object(map) => next.extend(map.values()),
                        Value::Array(items) => next.extend(items.iter()),
                        _ => {}
                    }
                }
            }
            Step::Recursive => {
                for value in current {
                    descend(value, &mut next);
                }
            }
            Step::Slice {
                start,
                end,
                step,
                index,
            } => {
                for value in current {
                    if value.is_null() {
                        continue;
                    }
                    let items = value.as_array().ok_or(EvalError)?;
                    next.extend(slice(items, *start, *end, *step, *index)?);
                }
            }
            Step::Filter(filter) => {
                for value in current {
                    if value.is_null() {
                        continue;
                    }
                    let items = value.as_array().ok_or(EvalError)?;
                    for item in items {
                        if filter_passes(filter, item)? {
                            next.push(item);
                        }
                    }
                }
            }
        }
        current = next;
    }
    Ok(current)
}

/// The value and all its descendants (containers only, as client-go does).
fn descend<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    let children: Vec<&Value> = match value {
        Value::Object(map) => map.values().collect(),
        Value::Array(items) => items.iter().collect(),
        _ => return,
    };
    if children.is_empty() {
        return;
    }
    out.push(value);
    for child in children {
        descend(child, out);
    }
}

fn slice(
    items: &[Value],
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    index: bool,
) -> Result<Vec<&Value>, EvalError> {
    let len = items.len() as i64;
    let mut start = start.unwrap_or(0);
    if start < 0 {
        start += len;
    }
    let end = if index {
        // [i] is [i:i+1], with a negative i counted from the end.
        let e = start + 1;
        if e <= 0 { e + len } else { e }
    } else {
        match end {
            None => len,
            Some(e) if e < 0 => e + len,
            Some(e) => e,
        }
    };
    if end == start {
        return Ok(Vec::new());
    }
    if start < 0 || start >= len || end < 0 || end > len || start > end {
        return Err(EvalError);
    }
    let step = match step {
        None => 1,
        Some(s) if s > 0 => s as usize,
        Some(_) => return Err(EvalError),
    };
    Ok(items[start as usize..end as usize]
        .iter()
        .step_by(step)
        .collect())
}

fn filter_passes(filter: &Filter, item: &Value) -> Result<bool, EvalError> {
    let lefts = eval(&filter.left, vec![item]);
    if filter.op == Op::Exists {
        return Ok(lefts.is_ok_and(|l| !l.is_empty()));
    }
    let lefts = lefts?;
    let left = match lefts.as_slice() {
        [] => return Ok(false),
        [one] => *one,
        _ => return Err(EvalError),
    };
    let right = match &filter.right {
        Operand::Literal(v) => v,
        Operand::Path(steps) => match eval(steps, vec![item])?.as_slice() {
            [] => return Ok(false),
            [one] => *one,
            _ => return Err(EvalError),
        },
        Operand::None => return Err(EvalError),
    };
    let ordering = compare(left, right)?;
    Ok(match filter.op {
        Op::Eq => ordering == Some(Ordering::Equal),
        Op::Ne => ordering != Some(Ordering::Equal),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let ordering = ordering.ok_or(EvalError)?;
            match filter.op {
                Op::Lt => ordering.is_lt(),
                Op::Le => ordering.is_le(),
                Op::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            }
        }
        Op::Exists => unreachable!("handled above"),
    })
}

/// Go template comparison: same basic kind only (integers with integers, floats with floats,
/// strings with strings); booleans compare for equality only (`None` ordering).
fn compare(left: &Value, right: &Value) -> Result<Option<Ordering>, EvalError> {
    match (left, right) {
        (Value::String(a), Value::String(b)) => Ok(Some(a.cmp(b))),
        (Value::Bool(a), Value::Bool(b)) => Ok((a == b).then_some(Ordering::Equal)),
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                Ok(Some(a.cmp(&b)))
            } else if a.is_f64() && b.is_f64() {
                let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                a.partial_cmp(&b).map(Some).ok_or(EvalError)
            } else {
                Err(EvalError)
            }
        }
        _ => Err(EvalError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(path: &str, obj: &Value) -> Result<Vec<Value>, EvalError> {
        let path = JsonPath::parse(path).unwrap();
        path.find(obj)
            .map(|found| found.into_iter().cloned().collect())
    }

    #[test]
    fn fields_indexes_and_filters() {
        let obj = json!({
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "items": [1, 2, 3, 4]},
            "status": {"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True", "observed": 2},
            ]},
        });
        assert_eq!(find(".spec.replicas", &obj), Ok(vec![json!(3)]));
        assert_eq!(find("{.metadata.name}", &obj), Ok(vec![json!("a")]));
        assert_eq!(find(".spec.missing", &obj), Ok(vec![]));
        assert_eq!(
            find(".metadata.labels.app\\.kubernetes\\.io/name", &obj),
            Ok(vec![json!("web")])
        );
        assert_eq!(
            find(".metadata.labels['app.kubernetes.io/name']", &obj),
            Ok(vec![json!("web")])
        );
        assert_eq!(find(".spec.items[0]", &obj), Ok(vec![json!(1)]));
        assert_eq!(find(".spec.items[-1]", &obj), Ok(vec![json!(4)]));
        assert_eq!(find(".spec.items[1:3]", &obj), Ok(vec![json!(2), json!(3)]));
        assert_eq!(find(".spec.items[::2]", &obj), Ok(vec![json!(1), json!(3)]));
        assert_eq!(find(".spec.items[9]", &obj), Err(EvalError));
        assert_eq!(find(".metadata[0]", &obj), Err(EvalError));
        assert_eq!(
            find(r#".status.conditions[?(@.type=="Ready")].status"#, &obj),
            Ok(vec![json!("True")])
        );
        assert_eq!(
            find(".status.conditions[?(@.type == 'Synced')].status", &obj),
            Ok(vec![json!("False")])
        );
        assert_eq!(
            find(".status.conditions[?(@.observed)].type", &obj),
            Ok(vec![json!("Ready")])
        );
        assert_eq!(
            find(".status.conditions[?(@.observed > 1)].type", &obj),
            Ok(vec![json!("Ready")])
        );
        // A string compared with a number is an error in Go templates.
        assert_eq!(
            find(".status.conditions[?(@.type > 1)].type", &obj),
            Err(EvalError)
        );
        assert_eq!(
            find(".status.conditions[*].type", &obj),
            Ok(vec![json!("Synced"), json!("Ready")])
        );
        assert_eq!(
            find("..type", &obj),
            Ok(vec![json!("Synced"), json!("Ready")])
        );
        assert!(JsonPath::parse(".spec.items[").is_err());
    }
}
