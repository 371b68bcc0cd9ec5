//! `agents` and `campaign`: the operator's management commands, including
//! reading `--hitlist` files into a campaign's census.

use std::net::IpAddr;
use std::path::PathBuf;

use darkwatch_schema::inputs::{delegated, InputError, LineError};
use darkwatch_schema::valid_name;

use super::{exit, read_input, warn_skipped, AgentsCmd, CampaignAddArgs, CampaignCmd, CliError};
use crate::clock::Clock;
use crate::store::{CampaignSpec, Store};
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
        let parsed = delegated::read(path, cc).map_err(|e| match e {
            InputError::Io { .. } => CliError::new(exit::NOINPUT, format!("delegated file: {e}")),
            InputError::NothingUsable { .. } => CliError::new(exit::DATAERR, e.to_string()),
        })?;
        let found = parsed.items;
        skipped = parsed.skipped;
        if found.is_empty() {
            return Err(CliError::new(
                exit::DATAERR,
                format!("{}: no allocated prefixes for {cc}", path.display()),
            ));
        }
        prefixes.extend(found);
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
        interval_secs: args.interval,
        prefixes,
        control: args.control.clone(),
        agents: args.agents.clone(),
    };
    Ok((spec, skipped))
}

/// Skipped hitlist lines printed one by one; the count covers them all.
const SKIPPED_SHOWN: usize = 20;

/// Reads every `--hitlist` file: their addresses, and how many lines they
/// skipped (each of the first few is printed as `FILE:LINE: why`).
fn read_hitlists(paths: &[PathBuf]) -> Result<(Vec<IpAddr>, usize), CliError> {
    let mut addrs = Vec::new();
    let mut skipped = 0;
    for path in paths {
        let text = read_input(path, "hitlist")?;
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

/// `hitlists: 3 addresses in 2 blocks seeded the census, 2 blocks added to the prefixes, 1 line skipped`.
fn seed_text(seed: &census::Seed, skipped: usize) -> String {
    let mut s = format!(
        "hitlists: {} addresses in {} blocks seeded the census, {} blocks added to the prefixes, {} lines skipped",
        seed.addresses,
        seed.blocks.len(),
        seed.new_prefixes.len(),
        skipped
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
            let (addrs, skipped) = read_hitlists(&args.hitlists)?;
            let seed = census::seed(&addrs, &spec.prefixes);
            spec.prefixes.extend(seed.new_prefixes.iter().copied());
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
        let seed = census::seed(
            &[
                "198.18.3.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
            &["198.18.0.0/16".parse().unwrap()],
        );
        assert_eq!(
            seed_text(&seed, 1),
            "hitlists: 2 addresses in 2 blocks seeded the census, 1 blocks added to the prefixes, 1 lines skipped"
        );
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
