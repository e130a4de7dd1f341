//! Parser for the sqllogictest script format
//! (https://www.sqlite.org/sqllogictest/doc/trunk/about.wiki).
//!
//! A script is a sequence of records separated by blank lines. Lines starting with `#` are
//! comments. A record may be preceded by `skipif <engine>` / `onlyif <engine>` lines.

/// How the rows of a query result are ordered before comparison.
// The variants carry sqllogictest's own names (nosort, rowsort, valuesort).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortMode {
    NoSort,
    RowSort,
    ValueSort,
}

/// The expected result of a query: either the values themselves or their count and MD5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Values(Vec<String>),
    Hash { count: usize, md5: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Statement { expect_error: bool, sql: String },
    Query { types: String, sort: SortMode, label: Option<String>, sql: String, expected: Expected },
    HashThreshold(usize),
    Halt,
}

/// `skipif` / `onlyif` conditions naming a database engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    SkipIf(String),
    OnlyIf(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the record's header (`statement ...`, `query ...`), for messages.
    pub line: usize,
    pub conditions: Vec<Condition>,
    pub kind: Kind,
}

impl Record {
    /// Whether the record's conditions let it run on `engine` (we are always "sqlite").
    pub fn applies_to(&self, engine: &str) -> bool {
        self.conditions.iter().all(|condition| match condition {
            Condition::SkipIf(name) => name != engine,
            Condition::OnlyIf(name) => name == engine,
        })
    }
}

/// Parses a whole script. `name` is only used in error messages.
pub fn parse_script(name: &str, text: &str) -> Result<Vec<Record>, String> {
    // Some corpus files use CRLF line ends and trailing blanks; neither is significant.
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let mut records = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let mut conditions = Vec::new();
        // Skip blank lines and comments, collect conditions, stop at the header.
        while at < lines.len() {
            let line = lines[at];
            if line.is_empty() || line.starts_with('#') {
                at += 1;
            } else if let Some(condition) = parse_condition(line) {
                conditions.push(condition);
                at += 1;
            } else {
                break;
            }
        }
        if at >= lines.len() {
            break;
        }
        let header_line = at + 1;
        let header = lines[at];
        at += 1;
        let body_start = at;
        while at < lines.len() && !lines[at].is_empty() {
            at += 1;
        }
        let body = &lines[body_start..at];
        let kind =
            parse_kind(header, body).map_err(|why| format!("{name}:{header_line}: {why}"))?;
        records.push(Record { line: header_line, conditions, kind });
    }
    Ok(records)
}

fn parse_condition(line: &str) -> Option<Condition> {
    let mut words = line.split_whitespace();
    let keyword = words.next()?;
    // Anything after the engine name (e.g. `# this is allowed`) is a comment.
    let engine = words.next()?.to_string();
    match keyword {
        "skipif" => Some(Condition::SkipIf(engine)),
        "onlyif" => Some(Condition::OnlyIf(engine)),
        _ => None,
    }
}

fn parse_kind(header: &str, body: &[&str]) -> Result<Kind, String> {
    let words: Vec<&str> = header.split_whitespace().collect();
    match words.as_slice() {
        ["statement", "ok"] => Ok(Kind::Statement { expect_error: false, sql: sql_text(body)? }),
        ["statement", "error", ..] => {
            Ok(Kind::Statement { expect_error: true, sql: sql_text(body)? })
        }
        ["query", types, rest @ ..] => parse_query(types, rest, body),
        ["hash-threshold", n] => {
            n.parse().map(Kind::HashThreshold).map_err(|_| format!("bad hash-threshold {n:?}"))
        }
        ["halt"] => Ok(Kind::Halt),
        _ => Err(format!("unknown record header {header:?}")),
    }
}

fn sql_text(lines: &[&str]) -> Result<String, String> {
    if lines.is_empty() {
        return Err("record without SQL".to_string());
    }
    Ok(lines.join("\n"))
}

fn parse_query(types: &str, rest: &[&str], body: &[&str]) -> Result<Kind, String> {
    if types.is_empty() || !types.chars().all(|c| matches!(c, 'I' | 'T' | 'R')) {
        return Err(format!("bad column types {types:?}"));
    }
    let sort = match rest.first().copied() {
        None | Some("nosort") => SortMode::NoSort,
        Some("rowsort") => SortMode::RowSort,
        Some("valuesort") => SortMode::ValueSort,
        Some(other) => return Err(format!("bad sort mode {other:?}")),
    };
    let label = rest.get(1).map(|label| label.to_string());
    // Without a `----` line the query is expected to return nothing.
    let split = body.iter().position(|line| *line == "----").unwrap_or(body.len());
    let sql = sql_text(&body[..split])?;
    let result_lines: Vec<String> =
        body.get(split + 1..).unwrap_or(&[]).iter().map(|s| s.to_string()).collect();
    let expected = parse_hash_line(&result_lines).unwrap_or(Expected::Values(result_lines));
    Ok(Kind::Query { types: types.to_string(), sort, label, sql, expected })
}

/// Recognises `N values hashing to <md5>`.
fn parse_hash_line(lines: &[String]) -> Option<Expected> {
    let [line] = lines else { return None };
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [count, "values", "hashing", "to", md5] => {
            Some(Expected::Hash { count: count.parse().ok()?, md5: md5.to_string() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_conditions_and_results() {
        let text = "hash-threshold 8\r\n\r\n# c\r\nonlyif mssql  # note\r\nhalt\r\n\r\nstatement ok\r\nCREATE TABLE t(a)\r\n\r\n\
                    query IT rowsort lbl\nSELECT a,\n b FROM t\n----\n1\nx\n\nquery I\nSELECT 1\n----\n30 values hashing to abc\n";
        let records = parse_script("t", text).expect("parses");
        assert_eq!(records.len(), 5);
        assert_eq!(records[0].kind, Kind::HashThreshold(8));
        assert_eq!(records[1].conditions, vec![Condition::OnlyIf("mssql".into())]);
        assert!(!records[1].applies_to("sqlite"));
        assert_eq!(
            records[2].kind,
            Kind::Statement { expect_error: false, sql: "CREATE TABLE t(a)".into() }
        );
        assert_eq!(
            records[3].kind,
            Kind::Query {
                types: "IT".into(),
                sort: SortMode::RowSort,
                label: Some("lbl".into()),
                sql: "SELECT a,\n b FROM t".into(),
                expected: Expected::Values(vec!["1".into(), "x".into()]),
            }
        );
        assert!(matches!(
            &records[4].kind,
            Kind::Query { expected: Expected::Hash { count: 30, .. }, .. }
        ));
    }
}
