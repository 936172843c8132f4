//! `runpool console`: sign a browser in to the web console (`/console` on the server) as the
//! CLI's current account (or `--account`).
//!
//! The CLI, authenticated as that account, asks the server for a one-time code
//! (`POST /runpool/v1/console/codes`) and prints `ENDPOINT/console/#code=CODE`; the page trades
//! the code once for a session of the same principal. When this machine holds the server's
//! admin credential (the local server record, `--admin-credential`-style discovery as in
//! `auth login`), it goes with the code so that the console can switch to other simulated
//! users; `--no-admin` keeps it back. Where a graphical session exists the link is opened
//! with `xdg-open` (`open` on macOS); where none does, printing it is all, and never an error.

use crate::Ctx;
use anyhow::{Result, anyhow};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// Only print the link; do not try to open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Do not give the browser the server's admin credential (it then cannot switch users).
    #[arg(long)]
    pub no_admin: bool,
}

pub async fn run(ctx: &Ctx, args: &ConsoleArgs) -> Result<()> {
    let account = ctx.account()?;
    let endpoint = ctx.endpoint();
    let api = ctx.api().await?;
    let admin = if args.no_admin {
        None
    } else {
        runpool_client::auth::find_admin_credential(None, &endpoint).ok()
    };
    let mut body = json!({});
    if let Some(cred) = &admin {
        body["adminCredential"] = json!(cred);
    }
    let v = api.post("/runpool/v1/console/codes", &body).await?;
    let code = v["code"]
        .as_str()
        .ok_or_else(|| anyhow!("The server's answer has no sign-in code: {v}"))?;
    let minutes = v["expiresIn"].as_u64().unwrap_or(300) / 60;
    // The configured endpoint, not the server's own idea of it: it is what this machine reaches.
    let url = format!("{endpoint}/console/#code={code}");
    eprintln!(
        "Open this link in a browser to sign in to the Runpool console as [{account}]. It works \
         once, within {minutes} minutes{}:\n",
        if admin.is_some() {
            "; the console may switch to other simulated users"
        } else {
            ""
        }
    );
    crate::emit(&format!("{url}\n"));
    if !args.no_browser && open_browser(&url) {
        eprintln!("\nOpened it in your browser.");
    }
    Ok(())
}

/// Open `url` in the desktop's browser, if there is a desktop. Failure is silent: the link
/// was printed.
fn open_browser(url: &str) -> bool {
    use std::process::{Command, Stdio};
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !graphical {
            return false;
        }
        "xdg-open"
    };
    Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}
