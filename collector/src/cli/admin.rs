//! `agents` and `campaign`: the operator's management commands, including
//! reading `--hitlist` files into a campaign's census. `campaign add` and
//! `campaign show` print what a campaign holds (`crate::space::Figures`),
//! so that a typo or a campaign too large for its agents shows at once.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use darkwatch_schema::inputs::pfx2as::Pfx2As;
use darkwatch_schema::inputs::{self, delegated, special, InputError, LineError};
use darkwatch_schema::valid_name;

use super::{
    edit, exit, warn_skipped, AgentsCmd, CampaignAddArgs, CampaignCmd, CliError, FiguresArgs,
};
use crate::clock::Clock;
use crate::space::Figures;
use crate::store::{Campaign, CampaignSpec, Store};
use crate::tokens;
use crate::{census, hitlist};

fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn check_name(kind: &str, name: &str) -> Result<(), CliError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(CliError::new(
            exit::DATAERR,
            format!("{kind} name {name:?} is invalid (1..=64 chars of A-Z a-z 0-9 . _ -)"),
        ))
    }
}

pub(super) async fn agents<S: Store>(
    store: &S,
    cmd: AgentsCmd,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    match cmd {
        AgentsCmd::Add { name } => {
            check_name("agent", &name)?;
            let token = tokens::generate();
            store
                .add_agent(&name, &tokens::hash(&token), clock.now_ms())
                .await?;
            eprintln!("agent {name} added; its token is shown once, store it on the agent:");
            println!("{token}");
        }
        AgentsCmd::List { json } => {
            let list = store.list_agents().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list)
                        .map_err(|e| CliError::new(exit::DATAERR, e.to_string()))?
                );
            } else {
                println!(
                    "{:<24} {:<20} {:<20} REVOKED",
                    "NAME", "CREATED", "LAST SEEN"
                );
                for a in list {
                    println!(
                        "{:<24} {:<20} {:<20} {}",
                        a.name,
                        fmt_ms(a.created_ms),
                        a.last_seen_ms.map(fmt_ms).unwrap_or_else(|| "never".into()),
                        if a.revoked { "yes" } else { "no" }
                    );
                }
            }
        }
        AgentsCmd::Revoke { name } => {
            store.revoke_agent(&name).await?;
            eprintln!("agent {name} revoked");
        }
        AgentsCmd::Rotate { name } => {
            let token = tokens::generate();
            store.rotate_agent(&name, &tokens::hash(&token)).await?;
            eprintln!("agent {name} has a new token (the old one no longer works); shown once:");
            println!("{token}");
        }
        AgentsCmd::Remove { name } => {
            let naming: Vec<String> = store
                .list_campaigns()
                .await?
                .into_iter()
                .filter(|c| c.agents.contains(&name))
                .map(|c| c.name)
                .collect();
            if !naming.is_empty() {
                return Err(CliError::new(
                    exit::DATAERR,
                    format!(
                        "agent {name} is named by campaign(s) {}: change them first \
                         (campaign add NAME --replace --agents ...)",
                        naming.join(", ")
                    ),
                ));
            }
            store.remove_agent(&name).await?;
            eprintln!("agent {name} removed");
        }
    }
    Ok(())
}

/// Builds the campaign definition from the command line (reads the
/// delegated file if given). Also returns the delegated file's skipped lines.
fn campaign_spec(args: &CampaignAddArgs) -> Result<(CampaignSpec, Vec<LineError>), CliError> {
    check_name("campaign", &args.name)?;
    let country = match &args.country {
        Some(cc) if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(cc.to_ascii_uppercase())
        }
        Some(cc) => {
            return Err(CliError::new(
                exit::USAGE,
                format!("--country {cc:?} is not a two-letter code"),
            ))
        }
        None => None,
    };
    let mut prefixes = args.prefixes.clone();
    let mut skipped = Vec::new();
    if let (Some(path), Some(cc)) = (&args.delegated, &country) {
        let parsed = delegated::read_lines(path, cc).map_err(|e| match e {
            InputError::Io { .. } => CliError::new(exit::NOINPUT, format!("delegated file: {e}")),
            _ => CliError::new(exit::DATAERR, e.to_string()),
        })?;
        let found = parsed.items;
        skipped = parsed.skipped;
        if found.is_empty() {
            return Err(CliError::new(
                exit::DATAERR,
                format!("{}: no allocated prefixes for {cc}", path.display()),
            ));
        }
        if !args.allow_special_purpose {
            refuse_special(path, &found)?;
        }
        prefixes.extend(found.into_iter().map(|(_, n)| n));
    }
    for p in prefixes.iter().chain(&args.control) {
        if p.trunc() != *p {
            return Err(CliError::new(
                exit::DATAERR,
                format!("prefix {p} has host bits set (did you mean {}?)", p.trunc()),
            ));
        }
    }
    for a in &args.agents {
        check_name("agent", a)?;
    }
    let spec = CampaignSpec {
        name: args.name.clone(),
        country,
        interval_secs: args.interval.unwrap_or(edit::DEFAULT_INTERVAL_SECS),
        prefixes,
        control: args.control.clone(),
        agents: args.agents.clone(),
    };
    Ok((spec, skipped))
}

/// Refuses a delegated record that brings in special-purpose space: no
/// registry allocates it, so the line is a mistake (typically a count typo,
/// `10.0.0.0|1073741824`), named by file and line.
fn refuse_special(path: &Path, found: &[(usize, ipnet::IpNet)]) -> Result<(), CliError> {
    for (line, net) in found {
        if let Some(b) = special::overlapping(net) {
            return Err(CliError::new(
                exit::DATAERR,
                format!(
                    "{}:{line}: {net} is special-purpose space, {b}, which no registry allocates \
                     (a count typo?); nothing saved (--allow-special-purpose accepts it)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads the `--pfx2as` file of the figures, if any.
fn load_pfx2as(args: &FiguresArgs) -> Result<Option<Pfx2As>, CliError> {
    let Some(path) = &args.pfx2as else {
        return Ok(None);
    };
    let (m, skipped) = Pfx2As::load(path).map_err(|e| match e {
        InputError::Io { .. } => CliError::new(exit::NOINPUT, format!("pfx2as file: {e}")),
        _ => CliError::new(exit::DATAERR, e.to_string()),
    })?;
    warn_skipped(&skipped);
    Ok(Some(m))
}

/// Figures of a saved campaign: its prefixes and its census as agents get it.
async fn figures<S: Store>(
    store: &S,
    c: &Campaign,
    pfx2as: Option<&Pfx2As>,
) -> Result<Figures, CliError> {
    let census = census::for_assignment(c, store.census(&c.name).await?);
    Ok(Figures::new(
        &c.prefixes,
        census.iter().map(|b| (&b.block, b.addrs.as_slice())),
        pfx2as,
    ))
}

/// Skipped hitlist lines printed one by one; the count covers them all.
const SKIPPED_SHOWN: usize = 20;

/// Reads every `--hitlist` file: their addresses, and how many lines they
/// skipped (each of the first few is printed as `FILE:LINE: why`).
fn read_hitlists(paths: &[PathBuf]) -> Result<(Vec<IpAddr>, usize), CliError> {
    let mut addrs = Vec::new();
    let mut skipped = 0;
    for path in paths {
        // Published hitlists come compressed too (xz, gzip).
        let text = inputs::read_text(path).map_err(|e| match e {
            InputError::Io { .. } => CliError::new(exit::NOINPUT, format!("hitlist: {e}")),
            _ => CliError::new(exit::DATAERR, format!("hitlist: {e}")),
        })?;
        let h = hitlist::read(&text, &path.display().to_string())
            .map_err(|e| CliError::new(exit::DATAERR, e.to_string()))?;
        for line in h.skipped.iter().take(SKIPPED_SHOWN.saturating_sub(skipped)) {
            eprintln!("warning: skipped {line}");
        }
        skipped += h.skipped.len();
        addrs.extend(h.addrs);
    }
    if skipped > SKIPPED_SHOWN {
        eprintln!(
            "warning: ... and {} more skipped lines",
            skipped - SKIPPED_SHOWN
        );
    }
    Ok((addrs, skipped))
}

/// `hitlists: 3 addresses in 2 blocks seeded the census, 2 blocks added to
/// the prefixes, 1 lines skipped, 4 addresses outside the campaign and 1
/// special-purpose address skipped`.
fn seed_text(seed: &hitlist::Seed, skipped: usize) -> String {
    let mut s = format!(
        "hitlists: {} addresses in {} blocks seeded the census, {} blocks added to the prefixes, {} lines skipped, \
         {} addresses outside the campaign and {} special-purpose addresses skipped",
        seed.addresses,
        seed.blocks.len(),
        seed.new_prefixes.len(),
        skipped,
        seed.outside,
        seed.reserved
    );
    if seed.over_bound > 0 {
        s.push_str(&format!(
            ", {} addresses beyond the bound of {} per /24 and {} per /48 left out",
            seed.over_bound,
            census::MAX_ADDRS_V4,
            census::MAX_ADDRS_V6
        ));
    }
    s
}

pub(super) async fn campaign<S: Store>(
    store: &S,
    cmd: CampaignCmd,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    match cmd {
        CampaignCmd::Add(args) => {
            let (mut spec, delegated_skipped) = campaign_spec(&args)?;
            warn_skipped(&delegated_skipped);
            let unknown = edit::unknown_agents(&spec.agents, &store.list_agents().await?);
            if !unknown.is_empty() {
                return Err(CliError::new(
                    exit::DATAERR,
                    format!(
                        "--agents names no registered agent {} (see `agents list`; register \
                         with `agents add NAME`)",
                        unknown.join(", ")
                    ),
                ));
            }
            if args.replace {
                let saved = store.list_campaigns().await?;
                if let Some(old) = saved.iter().find(|c| c.name == spec.name) {
                    spec = edit::keep_unchanged(spec, edit::Given::of(&args), old);
                }
            }
            let (addrs, skipped) = read_hitlists(&args.hitlists)?;
            let seed = hitlist::seed(addrs, &spec.prefixes, args.allow_special_purpose);
            spec.prefixes.extend(seed.new_prefixes.iter().copied());
            if spec.prefixes.is_empty() {
                return Err(CliError::new(
                    exit::DATAERR,
                    format!("no campaign space: {}", seed_text(&seed, skipped)),
                ));
            }
            let pfx2as = load_pfx2as(&args.figures)?;
            let now = clock.now_ms();
            let c = store.put_campaign(&spec, args.replace, now).await?;
            if !seed.blocks.is_empty() {
                store.put_census(&c.name, &seed.blocks, now).await?;
            }
            let delegated_note = match (&args.delegated, delegated_skipped.len()) {
                (Some(p), n) if n > 0 => {
                    format!(" ({n} unparseable line(s) of {} skipped)", p.display())
                }
                _ => String::new(),
            };
            eprintln!(
                "campaign {} saved: {} prefixes, every {} s, generation {}{delegated_note}",
                c.name,
                c.prefixes.len(),
                c.interval_secs,
                c.generation
            );
            if !args.hitlists.is_empty() {
                eprintln!("{}", seed_text(&seed, skipped));
            }
            let f = figures(store, &c, pfx2as.as_ref()).await?;
            eprintln!("campaign {}: {}", c.name, f.text());
            let FiguresArgs {
                agent_max_targets,
                warn_share,
                ..
            } = args.figures;
            if let Some(w) = f.over_share(agent_max_targets, warn_share) {
                eprintln!("warning: {w}");
            }
        }
        CampaignCmd::Show {
            name,
            json,
            figures: fargs,
        } => {
            let c = store
                .list_campaigns()
                .await?
                .into_iter()
                .find(|c| c.name == name)
                .ok_or_else(|| CliError::new(exit::DATAERR, format!("no campaign {name:?}")))?;
            let pfx2as = load_pfx2as(&fargs)?;
            let f = figures(store, &c, pfx2as.as_ref()).await?;
            let warning = f.over_share(fargs.agent_max_targets, fargs.warn_share);
            if json {
                let v = serde_json::json!({
                    "name": c.name,
                    "country": c.country,
                    "interval_secs": c.interval_secs,
                    "generation": c.generation,
                    "figures": f,
                    "agent_max_targets": fargs.agent_max_targets,
                    "share_of_max_targets": f.share_of(fargs.agent_max_targets),
                    "warning": warning,
                });
                super::print_json(&v)?;
            } else {
                super::print_out(&format!(
                    "campaign {} ({}), every {} s, generation {}\n{}\n{}",
                    c.name,
                    c.country.as_deref().unwrap_or("no country"),
                    c.interval_secs,
                    c.generation,
                    f.text(),
                    warning
                        .map(|w| format!("warning: {w}\n"))
                        .unwrap_or_default()
                ))?;
            }
        }
        CampaignCmd::List { json } => {
            let list = store.list_campaigns().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list)
                        .map_err(|e| CliError::new(exit::DATAERR, e.to_string()))?
                );
            } else {
                println!(
                    "{:<20} {:<7} {:>8} {:>8} {:>7} {:<20} GEN",
                    "NAME", "COUNTRY", "INTERVAL", "PREFIXES", "CONTROL", "AGENTS"
                );
                for c in list {
                    let agents = if c.agents.is_empty() {
                        "all".to_string()
                    } else {
                        c.agents.join(",")
                    };
                    println!(
                        "{:<20} {:<7} {:>8} {:>8} {:>7} {:<20} {}",
                        c.name,
                        c.country.as_deref().unwrap_or("-"),
                        c.interval_secs,
                        c.prefixes.len(),
                        c.control.len(),
                        agents,
                        c.generation
                    );
                }
            }
        }
        CampaignCmd::Remove { name } => {
            store.remove_campaign(&name).await?;
            store.clear_census(&name).await?;
            eprintln!("campaign {name} removed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    #[test]
    fn hitlist_summary_counts_what_was_seeded_and_skipped() {
        let seed = hitlist::seed(
            vec![
                "198.18.3.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
                "175.45.176.1".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
            ],
            &["198.18.0.0/16".parse().unwrap()],
            false,
        );
        assert_eq!(
            seed_text(&seed, 1),
            "hitlists: 1 addresses in 1 blocks seeded the census, 0 blocks added to the prefixes, 1 lines skipped, \
             1 addresses outside the campaign and 2 special-purpose addresses skipped"
        );
    }

    #[test]
    fn a_count_typo_into_special_purpose_space_is_refused_with_its_line() {
        let path = std::env::temp_dir().join(format!("dw-typo-{}", std::process::id()));
        std::fs::write(
            &path,
            "2|apnic|20241122|3|19830613|20241121|+1000\n\
             apnic|KP|ipv4|175.45.176.0|1024|20071109|allocated\n\
             apnic|KP|ipv4|10.0.0.0|1073741824|20071109|allocated\n",
        )
        .unwrap();
        let p = path.display().to_string();
        let args = |extra: &[&str]| {
            let mut v = vec![
                "dc",
                "campaign",
                "add",
                "kp",
                "--country",
                "KP",
                "--delegated",
                &p,
            ];
            v.extend(extra);
            let Command::Campaign(CampaignCmd::Add(args)) = Cli::try_parse_from(v).unwrap().command
            else {
                panic!("wrong command")
            };
            args
        };
        let refused = campaign_spec(&args(&[]));
        let allowed = campaign_spec(&args(&["--allow-special-purpose"]));
        std::fs::remove_file(&path).unwrap();
        let e = refused.unwrap_err();
        assert_eq!(e.code, exit::DATAERR);
        assert!(
            e.message.starts_with(&format!(
                "{p}:3: 10.0.0.0/7 is special-purpose space, 10.0.0.0/8 (private-use, RFC 1918)"
            )),
            "{}",
            e.message
        );
        assert!(allowed.unwrap().0.prefixes.len() > 2);
    }

    #[test]
    fn campaign_needs_a_source_and_valid_fields() {
        assert!(Cli::try_parse_from(["dc", "campaign", "add", "kp"]).is_err());
        assert!(Cli::try_parse_from(["dc", "campaign", "add", "kp", "--delegated", "f"]).is_err());
        // A hitlist alone is a source, and may come with prefixes.
        let cli = Cli::try_parse_from([
            "dc",
            "campaign",
            "add",
            "v6",
            "--hitlist",
            "a.txt",
            "--hitlist",
            "b.txt",
            "--prefix",
            "198.18.0.0/16",
        ])
        .unwrap();
        let Command::Campaign(CampaignCmd::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(
            args.hitlists,
            [PathBuf::from("a.txt"), PathBuf::from("b.txt")]
        );
        let (spec, skipped) = campaign_spec(&args).unwrap();
        assert!(spec.country.is_none());
        assert!(skipped.is_empty());
        let cli = Cli::try_parse_from([
            "dc",
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/16",
            "--agents",
            "a,b",
            "--interval",
            "60",
        ])
        .unwrap();
        let Command::Campaign(CampaignCmd::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        let (spec, skipped) = campaign_spec(&args).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(spec.agents, ["a", "b"]);
        assert_eq!(spec.interval_secs, 60);

        let cli = Cli::try_parse_from(["dc", "campaign", "add", "kp", "--prefix", "198.18.0.1/16"])
            .unwrap();
        let Command::Campaign(CampaignCmd::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(campaign_spec(&args).unwrap_err().code, exit::DATAERR);

        let cli =
            Cli::try_parse_from(["dc", "campaign", "add", "../x", "--prefix", "198.18.0.0/16"])
                .unwrap();
        let Command::Campaign(CampaignCmd::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(campaign_spec(&args).unwrap_err().code, exit::DATAERR);
    }
}
