//! `sweep16`, `sweep15`: darkwatch and its peers sweeping a lab space.

use anyhow::{bail, Result};
use darkwatch_netlab::workspace_bin;
use ipnet::Ipv4Net;

use crate::sweep::{SweepConfig, Tool};
use crate::{f, yes, Args, Row};
use crate::{stats, sweep};

fn tool_of(s: &str) -> Result<Tool> {
    Ok(match s {
        "darkwatch" => Tool::Darkwatch,
        "zmap" => Tool::Zmap,
        "fping" => Tool::Fping,
        "scamper" => Tool::Scamper,
        _ => bail!("unknown tool {s:?}"),
    })
}

pub(crate) fn sweep_rows(
    args: &Args,
    space: &str,
    rows: &mut Vec<Row>,
    detail: &mut String,
) -> Result<()> {
    let space: Ipv4Net = space.parse()?;
    let cfg = SweepConfig {
        space,
        silent_share: 0.2,
        reps: args.reps,
        timeout_ms: args.timeout_ms,
        agent: workspace_bin("darkwatch-agent")?,
        tools: args
            .tools
            .iter()
            .map(|t| tool_of(t))
            .collect::<Result<_>>()?,
        dw_pps: args.dw_pps,
    };
    eprintln!("sweep of {space} ({} reps, 20% of /24s silent)", args.reps);
    let sums = sweep::bench(&cfg)?;
    let zmap = sums.iter().find(|s| s.tool == Tool::Zmap).cloned();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    };
    let table: Vec<Vec<String>> = sums
        .iter()
        .map(|s| {
            vec![
                s.tool.name().into(),
                f(s.wall_s, 2),
                f(s.cpu_s, 2),
                f(s.pps.map(|p| p / 1000.0), 1),
                f(s.share.map(|x| x * 100.0), 2),
                s.false_positives.to_string(),
                s.completed.clone(),
                ratio(s.wall_s, zmap.as_ref().and_then(|z| z.wall_s)),
                ratio(s.cpu_s, zmap.as_ref().and_then(|z| z.cpu_s)),
                s.note.clone(),
            ]
        })
        .collect();
    detail.push_str(&format!(
        "\nSweep of {space}, 20% of /24s silent, {} ms timeout, median of {} runs:\n\n",
        args.timeout_ms, args.reps
    ));
    detail.push_str(&stats::markdown_table(
        &[
            "tool",
            "wall s",
            "CPU s",
            "kpps",
            "found %",
            "false +",
            "completed",
            "wall/zmap",
            "CPU/zmap",
            "note",
        ],
        &table,
    ));
    if let Some(dw) = sums.iter().find(|s| s.tool == Tool::Darkwatch) {
        let zw = zmap.as_ref().and_then(|z| z.wall_s);
        let zc = zmap.as_ref().and_then(|z| z.cpu_s);
        rows.push(Row {
            what: format!("sweep {space}: wall s / CPU s / found %"),
            darkwatch: format!(
                "{} / {} / {}",
                f(dw.wall_s, 2),
                f(dw.cpu_s, 2),
                f(dw.share.map(|x| x * 100.0), 2)
            ),
            peers: sums
                .iter()
                .filter(|s| s.tool != Tool::Darkwatch)
                .map(|s| {
                    format!(
                        "{} {} / {} / {}",
                        s.tool.name(),
                        f(s.wall_s, 2),
                        f(s.cpu_s, 2),
                        f(s.share.map(|x| x * 100.0), 2)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            goal: "wall ≤ zmap, CPU ≤ zmap, 100 %, completes".into(),
            met: yes(dw.completed.starts_with(&args.reps.to_string())
                && dw.share.is_some_and(|s| s >= 1.0)
                && match (dw.wall_s, zw, dw.cpu_s, zc) {
                    (Some(w), Some(zw), Some(c), Some(zc)) => w <= zw && c <= zc,
                    _ => zmap.is_none(),
                }),
        });
    }
    Ok(())
}
