//! A client of Runpool's (and Google's) REST APIs, as the `runpool` commands use it: the HTTP
//! calls with Google's error body decoded and one poller for long-running operations
//! ([`api`]), credentials (simulated users, service-account key files, impersonation;
//! [`auth`]), the properties a client keeps ([`config`]), gcloud's `--format` engine
//! ([`output`]), and what allow-policy and worker pool commands share ([`iam`], [`run`]).
//!
//! Nothing here parses command lines or exits the process: the binary does both.

pub mod api;
pub mod auth;
pub mod config;
pub mod files;
pub mod iam;
pub mod output;
pub mod run;
