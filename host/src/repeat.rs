//! `repeat`: a timed loop inside the host, so measured latencies include SQLite and the node
//! but not the harness's socket. Parameters may be generators (`$seq`, `$rand`, `$blob`),
//! evaluated at each execution with a seeded generator, so runs are repeatable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::Value;

use crate::protocol::{
    ErrorCount, RepeatReport, RepeatSpec, SqlError, BLOB_BYTES_MAX, REPEAT_COUNT_MAX,
    REPEAT_DURATION_MS_MAX, STATEMENTS_MAX,
};
use crate::sqlite::{roll_back_if_open, sql_error, to_sql};

/// A parameter as evaluated at each execution.
enum Param {
    Fixed(SqlValue),
    /// Start plus the number of statements run so far.
    Seq(i64),
    /// Uniform in `lo..=hi`.
    Rand(i64, i64),
    /// That many pseudo-random bytes.
    Blob(usize),
}

struct Compiled {
    sql: String,
    params: Vec<Param>,
    times: u32,
}

/// splitmix64: small, seeded and good enough to spread keys and fill blobs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.wrapping_sub(lo) as u64 + 1;
        lo.wrapping_add((self.next() % span.max(1)) as i64)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn compile_param(value: &Value) -> Result<Param, SqlError> {
    if let Value::Object(map) = value {
        if map.len() == 1 {
            if let Some(start) = map.get("$seq") {
                return start
                    .as_i64()
                    .map(Param::Seq)
                    .ok_or_else(|| SqlError::host("$seq needs an integer"));
            }
            if let Some(range) = map.get("$rand") {
                let bounds = range
                    .as_array()
                    .and_then(|a| Some((a.first()?.as_i64()?, a.get(1)?.as_i64()?)));
                return match bounds {
                    Some((lo, hi)) if lo <= hi => Ok(Param::Rand(lo, hi)),
                    _ => Err(SqlError::host("$rand needs [lo, hi] with lo <= hi")),
                };
            }
            if let Some(len) = map.get("$blob") {
                return match len.as_u64() {
                    Some(n) if n <= BLOB_BYTES_MAX => Ok(Param::Blob(
                        usize::try_from(n).map_err(|_| SqlError::host("blob size"))?,
                    )),
                    _ => Err(SqlError::host(format!("$blob needs a size up to {BLOB_BYTES_MAX}"))),
                };
            }
        }
    }
    to_sql(value).map(Param::Fixed)
}

fn check(spec: &RepeatSpec) -> Result<Vec<Compiled>, SqlError> {
    if spec.count > REPEAT_COUNT_MAX {
        return Err(SqlError::host(format!("count over {REPEAT_COUNT_MAX}")));
    }
    if spec.duration_ms.is_some_and(|d| d > REPEAT_DURATION_MS_MAX) {
        return Err(SqlError::host(format!("duration_ms over {REPEAT_DURATION_MS_MAX}")));
    }
    if spec.statements.is_empty() || spec.statements.len() > STATEMENTS_MAX {
        return Err(SqlError::host(format!("1 to {STATEMENTS_MAX} statements")));
    }
    spec.statements
        .iter()
        .map(|s| {
            if s.times == 0 || s.times as usize > STATEMENTS_MAX {
                return Err(SqlError::host(format!("times must be 1 to {STATEMENTS_MAX}")));
            }
            let params = s.params.iter().map(compile_param).collect::<Result<_, _>>()?;
            Ok(Compiled { sql: s.sql.clone(), params, times: s.times })
        })
        .collect()
}

/// Runs the loop on `conn`. Only a malformed request is an error; failed units are counted.
pub fn run(conn: &Connection, spec: &RepeatSpec) -> Result<RepeatReport, SqlError> {
    let compiled = check(spec)?;
    let deadline = spec.duration_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut rng = Rng(spec.seed);
    let mut seq: i64 = 0;
    let mut report = RepeatReport::default();
    let mut errors: BTreeMap<Option<i32>, ErrorCount> = BTreeMap::new();
    if spec.latencies {
        report.latencies_us.reserve(usize::try_from(spec.count.min(REPEAT_COUNT_MAX)).unwrap_or(0));
    }
    let started = Instant::now();
    for _ in 0..spec.count {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let before = Instant::now();
        match run_unit(conn, &compiled, spec.tx, &mut rng, &mut seq) {
            Ok(rows) => {
                report.units_ok += 1;
                report.rows += rows;
                if spec.latencies {
                    report.latencies_us.push(micros(before.elapsed()));
                }
            }
            Err(error) => {
                roll_back_if_open(conn);
                report.units_failed += 1;
                errors
                    .entry(error.extended)
                    .or_insert_with(|| ErrorCount {
                        code: error.code,
                        extended: error.extended,
                        count: 0,
                        message: error.message,
                    })
                    .count += 1;
                if spec.stop_on_error {
                    break;
                }
            }
        }
    }
    report.elapsed_us = micros(started.elapsed());
    report.errors = errors.into_values().collect();
    Ok(report)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// One unit: every statement `times` times, in a transaction if asked. Returns rows read.
fn run_unit(
    conn: &Connection,
    compiled: &[Compiled],
    tx: bool,
    rng: &mut Rng,
    seq: &mut i64,
) -> Result<u64, SqlError> {
    if tx {
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(sql_error)?;
    }
    let mut rows_read = 0;
    for statement in compiled {
        let mut stmt = conn.prepare_cached(&statement.sql).map_err(sql_error)?;
        for _ in 0..statement.times {
            for (i, param) in statement.params.iter().enumerate() {
                let value = match param {
                    Param::Fixed(v) => v.clone(),
                    Param::Seq(start) => SqlValue::Integer(start + *seq),
                    Param::Rand(lo, hi) => SqlValue::Integer(rng.between(*lo, *hi)),
                    Param::Blob(len) => SqlValue::Blob(rng.bytes(*len)),
                };
                stmt.raw_bind_parameter(i + 1, value).map_err(sql_error)?;
            }
            *seq += 1;
            let mut rows = stmt.raw_query();
            while rows.next().map_err(sql_error)?.is_some() {
                rows_read += 1;
            }
        }
    }
    if tx {
        conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])).map_err(sql_error)?;
    }
    Ok(rows_read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand_stays_in_bounds_and_is_seeded() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..1000 {
            let x = a.between(3, 9);
            assert!((3..=9).contains(&x));
            assert_eq!(x, b.between(3, 9));
        }
        assert_eq!(a.bytes(13).len(), 13);
    }

    #[test]
    fn generators_parse() {
        assert!(matches!(compile_param(&serde_json::json!({"$seq": 5})), Ok(Param::Seq(5))));
        assert!(matches!(
            compile_param(&serde_json::json!({"$rand": [1, 2]})),
            Ok(Param::Rand(1, 2))
        ));
        assert!(compile_param(&serde_json::json!({"$rand": [2, 1]})).is_err());
        assert!(matches!(compile_param(&serde_json::json!({"$blob": 10})), Ok(Param::Blob(10))));
        assert!(matches!(
            compile_param(&serde_json::json!("x")),
            Ok(Param::Fixed(SqlValue::Text(_)))
        ));
    }
}
