//! Values as the shell prints them in `.mode quote`, and their rendering as sqllogictest
//! result strings.
//!
//! Quote mode is used because it is unambiguous: it keeps the storage class (NULL, bare
//! integer, bare real, 'text', X'blob'), prints reals with 20 significant digits (enough to
//! recover the exact double), and quotes text so commas and newlines inside values cannot be
//! confused with separators.

/// One value of a result row, with its SQLite storage class.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// Splits quote-mode output (`v1,v2\n` per row) into rows of cells.
pub fn parse_quote_rows(output: &[u8]) -> Result<Vec<Vec<Cell>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut at = 0;
    while at < output.len() {
        let (cell, next) = parse_cell(output, at)?;
        row.push(cell);
        match output.get(next) {
            Some(b',') => at = next + 1,
            Some(b'\n') | None => {
                rows.push(std::mem::take(&mut row));
                at = next + 1;
            }
            Some(other) => {
                return Err(format!("unexpected byte {:?} after a value at {next}", *other as char))
            }
        }
    }
    Ok(rows)
}

/// Parses one cell starting at `at`; returns it and the index just past it.
fn parse_cell(output: &[u8], at: usize) -> Result<(Cell, usize), String> {
    match output[at] {
        b'\'' => {
            let (bytes, next) = parse_quoted(output, at)?;
            Ok((Cell::Text(bytes), next))
        }
        b'X' if output.get(at + 1) == Some(&b'\'') => {
            let (hex, next) = parse_quoted(output, at + 1)?;
            Ok((Cell::Blob(decode_hex(&hex)?), next))
        }
        _ => {
            let end = output[at..]
                .iter()
                .position(|b| *b == b',' || *b == b'\n')
                .map_or(output.len(), |n| at + n);
            let token = std::str::from_utf8(&output[at..end])
                .map_err(|_| "non-UTF-8 bare token".to_string())?;
            Ok((parse_bare(token)?, end))
        }
    }
}

/// A single-quoted SQL string starting at `at` (the quote); `''` stands for one quote.
fn parse_quoted(output: &[u8], at: usize) -> Result<(Vec<u8>, usize), String> {
    let mut bytes = Vec::new();
    let mut i = at + 1;
    loop {
        match output.get(i) {
            None => return Err("unterminated quoted value".to_string()),
            Some(b'\'') if output.get(i + 1) == Some(&b'\'') => {
                bytes.push(b'\'');
                i += 2;
            }
            Some(b'\'') => return Ok((bytes, i + 1)),
            Some(byte) => {
                bytes.push(*byte);
                i += 1;
            }
        }
    }
}

fn decode_hex(hex: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(hex).map_err(|_| "bad blob literal".to_string())?;
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(text.get(i..i + 2).unwrap_or("?"), 16)
                .map_err(|_| format!("bad blob literal {text}"))
        })
        .collect()
}

/// NULL, integers and reals are printed bare; reals always contain `.`, `e` or are `Inf`.
fn parse_bare(token: &str) -> Result<Cell, String> {
    match token {
        "NULL" => return Ok(Cell::Null),
        "Inf" => return Ok(Cell::Real(f64::INFINITY)),
        "-Inf" => return Ok(Cell::Real(f64::NEG_INFINITY)),
        _ => {}
    }
    if let Ok(int) = token.parse::<i64>() {
        return Ok(Cell::Int(int));
    }
    token.parse::<f64>().map(Cell::Real).map_err(|_| format!("unrecognised value {token:?}"))
}

/// Renders a cell for column type `I`, `T` or `R` as the reference harness does: integers via
/// `sqlite3_column_int64`, reals via `%.3f` of `sqlite3_column_double`, text via
/// `sqlite3_column_text` with unprintable bytes as `@`; NULL is `NULL`, `''` is `(empty)`.
pub fn render(cell: &Cell, column_type: char) -> String {
    if *cell == Cell::Null {
        return "NULL".to_string();
    }
    match column_type {
        'I' => as_int64(cell).to_string(),
        'R' => format_real_3(as_double(cell)),
        _ => render_text(&as_text(cell)),
    }
}

fn render_text(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty)".to_string();
    }
    bytes.iter().map(|b| if (b' '..=b'~').contains(b) { *b as char } else { '@' }).collect()
}

/// `sqlite3_column_int64`: reals truncate toward zero (saturating), text takes its integer prefix.
fn as_int64(cell: &Cell) -> i64 {
    match cell {
        Cell::Null => 0,
        Cell::Int(i) => *i,
        // Rust's `as` saturates and maps NaN to 0, like SQLite's doubleToInt64.
        Cell::Real(r) => *r as i64,
        Cell::Text(bytes) | Cell::Blob(bytes) => integer_prefix(bytes),
    }
}

/// SQLite's sqlite3Atoi64 on a string: optional blanks and sign, then digits; saturates.
fn integer_prefix(bytes: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    let magnitude: i128 = digits.parse().unwrap_or(if digits.is_empty() { 0 } else { i128::MAX });
    let value = if negative { -magnitude } else { magnitude };
    value.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `sqlite3_column_double`: text takes its longest numeric prefix.
fn as_double(cell: &Cell) -> f64 {
    match cell {
        Cell::Null => 0.0,
        Cell::Int(i) => *i as f64,
        Cell::Real(r) => *r,
        Cell::Text(bytes) | Cell::Blob(bytes) => real_prefix(bytes),
    }
}

fn real_prefix(bytes: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start();
    (1..=text.len())
        .rev()
        .filter_map(|n| text.get(..n))
        .find_map(|prefix| prefix.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// `sqlite3_column_text`: integers in decimal, reals as SQLite's `%!.15g`.
fn as_text(cell: &Cell) -> Vec<u8> {
    match cell {
        Cell::Null => Vec::new(),
        Cell::Int(i) => i.to_string().into_bytes(),
        Cell::Real(r) => sqlite_real_text(*r).into_bytes(),
        Cell::Text(bytes) | Cell::Blob(bytes) => bytes.clone(),
    }
}

/// SQLite's printf `%.3f`. Two differences from Rust's formatting matter: SQLite rounds
/// halves away from zero (Rust rounds exact binary halves such as 0.0625 to even), and it
/// produces at most 16 significant digits, padding the rest with zeros.
pub fn format_real_3(r: f64) -> String {
    const SIGNIFICANT: i32 = 16;
    if !r.is_finite() {
        return sqlite_real_text(r);
    }
    let (digits, exponent) = significant_digits(r.abs(), SIGNIFICANT as usize);
    let integer_digits = exponent + 1;
    if integer_digits + 3 <= SIGNIFICANT {
        let scaled = r.abs() * 1000.0;
        let adjusted = if scaled.fract() == 0.5 { r + r.signum() * 0.0001 } else { r };
        return format!("{adjusted:.3}");
    }
    let sign = if r < 0.0 { "-" } else { "" };
    let padded = format!("{digits:0<width$}", width = (integer_digits + 3) as usize);
    let (integer, fraction) = padded.split_at(integer_digits as usize);
    format!("{sign}{integer}.{fraction}")
}

/// The first `count` significant decimal digits of `r` (rounded) and its decimal exponent.
fn significant_digits(r: f64, count: usize) -> (String, i32) {
    let scientific = format!("{:.*e}", count - 1, r);
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    (mantissa.replace('.', ""), exponent.parse().expect("exponent is an integer"))
}

/// SQLite's `%!.15g` text form of a real: 15 significant digits, trailing zeros dropped but
/// at least one digit after the point, exponent form below 1e-4 or from 1e15 up.
pub fn sqlite_real_text(r: f64) -> String {
    if r.is_infinite() {
        return if r > 0.0 { "Inf".to_string() } else { "-Inf".to_string() };
    }
    if r == 0.0 {
        return "0.0".to_string();
    }
    let sign = if r < 0.0 { "-" } else { "" };
    let scientific = format!("{:.14e}", r.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("exponent is an integer");
    if !(-4..15).contains(&exponent) {
        let mantissa = trim_fraction(mantissa);
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs());
    }
    let decimals = (14 - exponent) as usize;
    format!("{sign}{}", trim_fraction(&format!("{:.*}", decimals, r.abs())))
}

/// Drops trailing zeros after the point but keeps one digit (`%!g` keeps `1.0`).
fn trim_fraction(text: &str) -> String {
    if !text.contains('.') {
        return format!("{text}.0");
    }
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quote_mode_rows() {
        let out = b"1,2.5,'x''y,z'\nNULL,1.0e+20,'\nq'\nX'00ff',-Inf,''\n";
        let rows = parse_quote_rows(out).expect("parses");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], vec![Cell::Int(1), Cell::Real(2.5), Cell::Text(b"x'y,z".to_vec())]);
        assert_eq!(rows[1], vec![Cell::Null, Cell::Real(1e20), Cell::Text(b"\nq".to_vec())]);
        assert_eq!(
            rows[2],
            vec![Cell::Blob(vec![0, 255]), Cell::Real(f64::NEG_INFINITY), Cell::Text(vec![])]
        );
    }

    #[test]
    fn renders_like_the_reference_harness() {
        assert_eq!(render(&Cell::Real(0.5), 'I'), "0");
        assert_eq!(render(&Cell::Real(-7.9), 'I'), "-7");
        assert_eq!(render(&Cell::Int(3), 'R'), "3.000");
        assert_eq!(render(&Cell::Real(0.0625), 'R'), "0.063");
        assert_eq!(render(&Cell::Real(-0.0625), 'R'), "-0.063");
        assert_eq!(render(&Cell::Int(i64::MIN), 'R'), "-9223372036854776000.000");
        assert_eq!(render(&Cell::Real(-18446744073709551616.0), 'R'), "-18446744073709550000.000");
        assert_eq!(render(&Cell::Real(1234567890123.4567), 'R'), "1234567890123.457");
        assert_eq!(render(&Cell::Real(12345678901234.567), 'R'), "12345678901234.570");
        assert_eq!(render(&Cell::Text(b"12abc".to_vec()), 'I'), "12");
        assert_eq!(render(&Cell::Text(vec![]), 'T'), "(empty)");
        assert_eq!(render(&Cell::Text(b"a\tb".to_vec()), 'T'), "a@b");
        assert_eq!(render(&Cell::Null, 'R'), "NULL");
        assert_eq!(render(&Cell::Real(1.0), 'T'), "1.0");
        assert_eq!(render(&Cell::Real(1.0 / 3.0), 'T'), "0.333333333333333");
        assert_eq!(render(&Cell::Real(1e20), 'T'), "1.0e+20");
        assert_eq!(render(&Cell::Real(1.5e-5), 'T'), "1.5e-05");
        assert_eq!(render(&Cell::Real(-123.25), 'T'), "-123.25");
    }
}
