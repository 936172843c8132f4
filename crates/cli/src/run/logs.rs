//! Cloud Logging v2 `entries:list` from the client: `logging read FILTER` and
//! `run worker-pools logs read|tail NAME`, shaped as gcloud's.
//!
//! Choices written down (DESIGN.md asks):
//! - `logging read` prints YAML entries, newest first, as gcloud does; `--limit` defaults to
//!   unlimited there (gcloud's own docs), so every page is read. `--freshness` (default `1d`)
//!   becomes a `timestamp>=` term only with `--order desc` and a filter that names no
//!   `timestamp`, as gcloud documents.
//! - `run worker-pools logs read` asks for the newest `--limit` (default 10) entries and
//!   prints them oldest first, one `YYYY-MM-DD HH:MM:SS TEXT` line each (UTC), like gcloud's
//!   `run services logs read`.
//! - `logs tail` polls `entries:list` every second for entries at or after the newest
//!   timestamp seen (starting at the moment it starts, so only new entries print) and prints
//!   them until interrupted. Entries at that boundary timestamp are told apart by their
//!   timestamp, instance, log and text rather than by `insertId`, because Runpool's `insertId`
//!   is derived from an entry's position in the response and so is not stable across calls.

use crate::Ctx;
use crate::run::RegionArg;
use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use runpool_client::output::Format;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

/// The most entries the server returns per call.
const MAX_PAGE: u64 = 1000;

#[derive(Subcommand, Debug)]
pub enum LoggingCmd {
    /// Read log entries.
    Read {
        /// Filter expression that specifies the log entries to return.
        #[arg(value_name = "LOG_FILTER")]
        log_filter: Option<String>,
        /// Maximum number of entries to return (default: unlimited).
        #[arg(long)]
        limit: Option<u64>,
        /// Return entries that are not older than this value (e.g. 30m, 2h, 1d).
        #[arg(long, default_value = "1d")]
        freshness: String,
        /// Ordering of returned log entries based on timestamp field.
        #[arg(long, default_value = "desc", value_parser = ["desc", "asc"])]
        order: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PoolLogsCmd {
    /// Read a worker pool's logs.
    Read {
        worker_pool: String,
        /// Number of log entries to show.
        #[arg(long, default_value_t = 10)]
        limit: u64,
        /// Return entries that are not older than this value (e.g. 30m, 2h, 1d).
        #[arg(long, default_value = "1d")]
        freshness: String,
        /// An extra Cloud Logging filter, ANDed with the pool's.
        #[arg(long)]
        log_filter: Option<String>,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Print a worker pool's new log entries as they arrive, until interrupted.
    Tail {
        worker_pool: String,
        /// An extra Cloud Logging filter, ANDed with the pool's.
        #[arg(long)]
        log_filter: Option<String>,
        #[command(flatten)]
        region: RegionArg,
    },
}

/// gcloud's durations as `--freshness` takes them: `1d`, `2h30m`, `45s`, `1w`, or ISO 8601
/// `P1D` / `PT2H`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<chrono::Duration> {
    let bad = || anyhow!("Invalid value for [--freshness]: [{text}] is not a duration.");
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_prefix('p').map(|r| r.replace('t', "")).unwrap_or(t);
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(chrono::Duration::seconds(n));
    }
    let mut total = 0i64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(chrono::Duration::seconds(total))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Non-empty terms joined by `AND` (the server's filter language takes plain terms).
fn join(terms: &[String]) -> String {
    terms
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().to_string())
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// One `entries:list` call.
async fn list(
    api: &runpool_client::api::Api,
    project: &str,
    filter: &str,
    page_size: u64,
    desc: bool,
    page_token: Option<&str>,
) -> Result<Value> {
    let mut body = json!({
        "resourceNames": [format!("projects/{project}")],
        "filter": filter,
        "pageSize": page_size,
        "orderBy": if desc { "timestamp desc" } else { "timestamp asc" },
    });
    if let Some(t) = page_token {
        body["pageToken"] = json!(t);
    }
    api.post("/v2/entries:list", &body).await
}

fn entries(page: &Value) -> Vec<Value> {
    page["entries"].as_array().cloned().unwrap_or_default()
}

pub async fn run_logging(ctx: &Ctx, cmd: &LoggingCmd) -> Result<()> {
    let LoggingCmd::Read {
        log_filter,
        limit,
        freshness,
        order,
    } = cmd;
    let project = ctx.project()?;
    let desc = order == "desc";
    let mut terms = vec![log_filter.clone().unwrap_or_default()];
    let fresh = parse_duration(freshness)?;
    if desc && !log_filter.as_deref().unwrap_or("").contains("timestamp") {
        terms.push(format!("timestamp>=\"{}\"", rfc3339(Utc::now() - fresh)));
    }
    let filter = join(&terms);
    let api = ctx.api().await?;
    let mut out: Vec<Value> = vec![];
    let mut token: Option<String> = None;
    loop {
        // Ascending pages are asked for in full and cut here: Runpool's server answers a
        // short ascending page with the newest entries rather than the oldest.
        let want = match limit {
            Some(l) if desc => (l - out.len() as u64).min(MAX_PAGE),
            Some(l) if out.len() as u64 >= *l => 0,
            _ => MAX_PAGE,
        };
        if want == 0 {
            break;
        }
        let page = list(&api, &project, &filter, want, desc, token.as_deref()).await?;
        out.extend(entries(&page));
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() && token.as_deref() != Some(t) => token = Some(t.into()),
            _ => break,
        }
    }
    if let Some(l) = limit {
        out.truncate(*l as usize);
    }
    ctx.print_list(out, Format::Yaml);
    Ok(())
}

/// The pool's own filter: resource type, pool name and (when known) its region.
fn pool_filter(ctx: &Ctx, pool: &str, region: &RegionArg, extra: Option<&str>) -> Result<String> {
    let mut terms = vec![
        "resource.type=\"cloud_run_worker_pool\"".to_string(),
        format!("resource.labels.worker_pool_name=\"{pool}\""),
    ];
    let region = match &region.region {
        Some(r) => Some(r.clone()),
        None => ctx
            .config
            .get(&runpool_client::config::Prop::parse("run/region")?),
    };
    if let Some(r) = region {
        terms.push(format!("resource.labels.location=\"{r}\""));
    }
    terms.extend(extra.map(str::to_string));
    Ok(join(&terms))
}

/// `2024-05-01 12:00:03 TEXT`, as gcloud's run logs print an entry.
pub fn line(e: &Value) -> String {
    let ts = e["timestamp"].as_str().unwrap_or_default();
    let when = DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ts.to_string());
    let text = match e["textPayload"].as_str() {
        Some(t) => t.to_string(),
        None if e["jsonPayload"].is_object() => e["jsonPayload"].to_string(),
        None => String::new(),
    };
    format!("{when} {text}\n")
}

pub async fn run_pool_logs(ctx: &Ctx, cmd: &PoolLogsCmd) -> Result<()> {
    match cmd {
        PoolLogsCmd::Read {
            worker_pool,
            limit,
            freshness,
            log_filter,
            region,
        } => {
            let project = ctx.project()?;
            let mut filter = pool_filter(ctx, worker_pool, region, log_filter.as_deref())?;
            if !log_filter.as_deref().unwrap_or("").contains("timestamp") {
                let since = Utc::now() - parse_duration(freshness)?;
                filter = join(&[filter, format!("timestamp>=\"{}\"", rfc3339(since))]);
            }
            if *limit == 0 {
                bail!("Invalid value for [--limit]: must be at least 1.");
            }
            let api = ctx.api().await?;
            // Newest `limit` first from the server, printed oldest first.
            let page = list(&api, &project, &filter, (*limit).min(MAX_PAGE), true, None).await?;
            let mut es = entries(&page);
            es.truncate(*limit as usize);
            es.reverse();
            if ctx.globals.format.is_some() {
                ctx.print_list(es, Format::Yaml);
            } else {
                crate::emit(&es.iter().map(line).collect::<String>());
            }
            Ok(())
        }
        PoolLogsCmd::Tail {
            worker_pool,
            log_filter,
            region,
        } => tail(ctx, worker_pool, region, log_filter.as_deref()).await,
    }
}

/// What tells two entries apart (see the module comment on `insertId`).
fn key(e: &Value) -> String {
    format!(
        "{}\u{1}{}\u{1}{}\u{1}{}",
        e["timestamp"].as_str().unwrap_or_default(),
        e["labels"]["instanceId"].as_str().unwrap_or_default(),
        e["logName"].as_str().unwrap_or_default(),
        e["textPayload"].as_str().unwrap_or_default(),
    )
}

async fn tail(ctx: &Ctx, pool: &str, region: &RegionArg, extra: Option<&str>) -> Result<()> {
    let project = ctx.project()?;
    let base = pool_filter(ctx, pool, region, extra)?;
    let api = ctx.api().await?;
    eprintln!("Tailing logs of worker pool [{pool}]; press Ctrl-C to stop.");
    let mut cursor = rfc3339(Utc::now());
    // Keys of the entries already printed at exactly `cursor`.
    let mut at_cursor: HashSet<String> = HashSet::new();
    loop {
        let filter = join(&[base.clone(), format!("timestamp>=\"{cursor}\"")]);
        let page = list(&api, &project, &filter, MAX_PAGE, false, None).await?;
        let mut es = entries(&page);
        es.sort_by(|a, b| {
            a["timestamp"]
                .as_str()
                .unwrap_or_default()
                .cmp(b["timestamp"].as_str().unwrap_or_default())
        });
        let mut text = String::new();
        for e in &es {
            let ts = e["timestamp"].as_str().unwrap_or_default().to_string();
            let k = key(e);
            if at_cursor.contains(&k) || ts.as_str() < cursor.as_str() {
                continue;
            }
            if ts != cursor {
                cursor = ts;
                at_cursor.clear();
            }
            at_cursor.insert(k);
            if ctx.globals.format.is_some() {
                text += &runpool_client::output::render_list(
                    &ctx.format_or(Format::Yaml),
                    std::slice::from_ref(e),
                );
            } else {
                text += &line(e);
            }
        }
        if !text.is_empty() {
            crate::emit(&text);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_gcloud_writes_them() {
        assert_eq!(parse_duration("1d").unwrap().num_seconds(), 86400);
        assert_eq!(parse_duration("2h30m").unwrap().num_seconds(), 9000);
        assert_eq!(parse_duration("PT1H").unwrap().num_seconds(), 3600);
        assert_eq!(parse_duration("45").unwrap().num_seconds(), 45);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1d2").is_err());
    }

    #[test]
    fn an_entry_prints_as_time_and_text() {
        let e = json!({"timestamp": "2024-05-01T12:00:03.123456Z", "textPayload": "hello"});
        assert_eq!(line(&e), "2024-05-01 12:00:03 hello\n");
    }
}
