//! Properties in `config_dir()/properties`, in gcloud's INI layout (`[core]` / `project = x`),
//! and the `config set|get|list|unset` commands.
//!
//! A bare name means `core/NAME`, as in gcloud. Only known properties are accepted, so a typo
//! fails loudly instead of being silently stored. `RUNPOOL_SECTION_NAME` in the environment
//! overrides a stored value (gcloud's `CLOUDSDK_SECTION_NAME`).

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8484";

/// `section/name` pairs this client understands.
pub const KNOWN: &[(&str, &str)] = &[
    ("core", "project"),
    ("core", "account"),
    ("core", "api_endpoint"),
    ("core", "disable_prompts"),
    ("auth", "impersonate_service_account"),
    ("run", "region"),
    ("run", "platform"),
];

/// A property name normalised to `(section, name)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    pub section: String,
    pub name: String,
}

impl Prop {
    pub fn parse(s: &str) -> Result<Prop> {
        let (section, name) = match s.split_once('/') {
            Some((sec, n)) => (sec, n),
            None => ("core", s),
        };
        if !KNOWN.iter().any(|(a, b)| *a == section && *b == name) {
            if KNOWN.iter().any(|(a, _)| *a == section) {
                bail!("Section [{section}] has no property [{name}].");
            }
            bail!("Section [{section}] does not exist.");
        }
        Ok(Prop {
            section: section.into(),
            name: name.into(),
        })
    }
    fn env_var(&self) -> String {
        format!("RUNPOOL_{}_{}", self.section, self.name).to_uppercase()
    }
}

impl std::fmt::Display for Prop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.section, self.name)
    }
}

/// The stored properties: section → name → value.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Config {
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

pub fn properties_path() -> PathBuf {
    runpool_control::base::local::config_dir().join("properties")
}

impl Config {
    pub fn load() -> Result<Config> {
        match std::fs::read_to_string(properties_path()) {
            Ok(text) => Ok(Config::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).context("reading the runpool properties file"),
        }
    }

    pub fn save(&self) -> Result<()> {
        let path = properties_path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, self.render()).with_context(|| format!("writing {}", path.display()))
    }

    pub fn parse(text: &str) -> Config {
        let mut cfg = Config::default();
        let mut section = String::from("core");
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.trim().to_string();
            } else if let Some((k, v)) = line.split_once('=') {
                cfg.sections
                    .entry(section.clone())
                    .or_default()
                    .insert(k.trim().into(), v.trim().into());
            }
        }
        cfg
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (section, props) in &self.sections {
            if props.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out += &format!("[{section}]\n");
            for (k, v) in props {
                out += &format!("{k} = {v}\n");
            }
        }
        out
    }

    /// The stored value, overridden by the environment.
    pub fn get(&self, p: &Prop) -> Option<String> {
        if let Ok(v) = std::env::var(p.env_var())
            && !v.is_empty()
        {
            return Some(v);
        }
        self.sections.get(&p.section)?.get(&p.name).cloned()
    }

    pub fn set(&mut self, p: &Prop, value: &str) {
        self.sections
            .entry(p.section.clone())
            .or_default()
            .insert(p.name.clone(), value.to_string());
    }

    pub fn unset(&mut self, p: &Prop) {
        if let Some(s) = self.sections.get_mut(&p.section) {
            s.remove(&p.name);
        }
    }

    fn core(&self, name: &str) -> Option<String> {
        self.get(&Prop {
            section: "core".into(),
            name: name.into(),
        })
    }
    pub fn project(&self) -> Option<String> {
        self.core("project")
    }
    pub fn account(&self) -> Option<String> {
        self.core("account")
    }
    pub fn endpoint(&self) -> String {
        self.core("api_endpoint")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prop_names_normalise_like_gcloud() {
        assert_eq!(Prop::parse("project").unwrap().to_string(), "core/project");
        assert_eq!(
            Prop::parse("core/project").unwrap().to_string(),
            "core/project"
        );
        assert_eq!(Prop::parse("run/region").unwrap().to_string(), "run/region");
        assert_eq!(
            Prop::parse("core/nope").unwrap_err().to_string(),
            "Section [core] has no property [nope]."
        );
        assert!(Prop::parse("bogus/x").is_err());
    }

    #[test]
    fn round_trips_ini() {
        let mut c = Config::default();
        c.set(&Prop::parse("project").unwrap(), "demo-project");
        c.set(&Prop::parse("run/region").unwrap(), "europe-west1");
        let text = c.render();
        assert_eq!(
            text,
            "[core]\nproject = demo-project\n\n[run]\nregion = europe-west1\n"
        );
        assert_eq!(Config::parse(&text), c);
        c.unset(&Prop::parse("core/project").unwrap());
        assert_eq!(c.render(), "[run]\nregion = europe-west1\n");
    }

    #[test]
    fn endpoint_defaults_and_trims() {
        let mut c = Config::default();
        assert_eq!(c.endpoint(), DEFAULT_ENDPOINT);
        c.set(&Prop::parse("api_endpoint").unwrap(), "http://127.0.0.1:9/");
        assert_eq!(c.endpoint(), "http://127.0.0.1:9");
    }
}
