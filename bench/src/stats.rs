//! Samples and their summaries (nearest-rank percentiles), as JSON.

use serde_json::{json, Value};

/// One completed request/turn: nanoseconds from send to the first content
/// byte (0 when there was none) and to the end (`[DONE]` / final `res`).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub first_ns: u64,
    pub done_ns: u64,
}

pub fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `{n, p50_us, p90_us, p99_us, max_us, mean_us}` of nanosecond values.
pub fn summary(values: &[u64]) -> Value {
    let mut s: Vec<u64> = values.to_vec();
    s.sort_unstable();
    let us = |ns: u64| (ns as f64 / 1e3 * 10.0).round() / 10.0;
    let mean = if s.is_empty() {
        0.0
    } else {
        s.iter().map(|&v| v as f64).sum::<f64>() / s.len() as f64
    };
    json!({
        "n": s.len(),
        "p50_us": us(pct(&s, 50.0)),
        "p90_us": us(pct(&s, 90.0)),
        "p99_us": us(pct(&s, 99.0)),
        "max_us": us(s.last().copied().unwrap_or(0)),
        "mean_us": (mean / 1e3 * 10.0).round() / 10.0,
    })
}

pub fn firsts(s: &[Sample]) -> Vec<u64> {
    s.iter().filter(|x| x.first_ns > 0).map(|x| x.first_ns).collect()
}

pub fn dones(s: &[Sample]) -> Vec<u64> {
    s.iter().map(|x| x.done_ns).collect()
}

pub fn p50_us(v: &[u64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    pct(&s, 50.0) as f64 / 1e3
}

pub fn p99_us(v: &[u64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    pct(&s, 99.0) as f64 / 1e3
}
