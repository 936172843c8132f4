//! `config set|get|unset|list`: the properties a client keeps.

use anyhow::Result;
use clap::Subcommand;
use runpool_client::config::{Config, KNOWN, Prop};
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Set a property (`project`, `account`, `api_endpoint`, `run/region`, ...).
    Set { property: String, value: String },
    /// Print a property's value.
    Get { property: String },
    /// List the set properties.
    List {
        /// Also list properties that are not set.
        #[arg(long)]
        all: bool,
    },
    /// Remove a property.
    Unset { property: String },
}

pub fn run(cmd: &ConfigCmd) -> Result<()> {
    let mut cfg = Config::load()?;
    match cmd {
        ConfigCmd::Set { property, value } => {
            let p = Prop::parse(property)?;
            cfg.set(&p, value);
            cfg.save()?;
            eprintln!("Updated property [{p}].");
        }
        ConfigCmd::Get { property } => {
            let p = Prop::parse(property)?;
            match cfg.get(&p) {
                Some(v) => crate::emit(&format!("{v}\n")),
                // gcloud says so on stderr and still succeeds.
                None => eprintln!("(unset)"),
            }
        }
        ConfigCmd::List { all } => {
            let mut shown: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
            for (section, name) in KNOWN {
                let p = Prop {
                    section: (*section).into(),
                    name: (*name).into(),
                };
                match cfg.get(&p) {
                    Some(v) => shown.entry(section).or_default().push((name, v)),
                    None if *all => shown
                        .entry(section)
                        .or_default()
                        .push((name, String::new())),
                    None => {}
                }
            }
            let mut text = String::new();
            for (section, mut props) in shown {
                if !text.is_empty() {
                    text.push('\n');
                }
                text += &format!("[{section}]\n");
                props.sort();
                for (name, v) in props {
                    let v = if v.is_empty() {
                        "(unset)".to_string()
                    } else {
                        v
                    };
                    text += &format!("{name} = {v}\n");
                }
            }
            crate::emit(&text);
            eprintln!("\nYour active configuration is: [default]");
        }
        ConfigCmd::Unset { property } => {
            let p = Prop::parse(property)?;
            cfg.unset(&p);
            cfg.save()?;
            eprintln!("Unset property [{p}].");
        }
    }
    Ok(())
}
