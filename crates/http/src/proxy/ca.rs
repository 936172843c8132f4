//! The local certificate authority the proxy signs Google's host names with. Made at first
//! start in `DATA_DIR/ca/` (`ca.pem`, and `ca-key.pem` mode 0600) and kept across restarts,
//! so a machine trusts it once. Leaf certificates are made per host as they are first asked
//! for, and kept in memory.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_rustls::rustls;

/// Where this machine keeps its trusted roots.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The CA as it is kept: its certificate and its key, PEM.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Pems {
    cert: String,
    key: String,
}

pub struct LocalCa {
    cert_pem: String,
    cert_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// host → TLS configuration with that host's certificate.
    configs: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

/// The CA's subject and powers: a CA that signs leaf certificates only.
fn ca_params() -> io::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Runpool local CA");
    name.push(DnType::OrganizationName, "Runpool");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(params)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl LocalCa {
    /// The CA in `dir` (`DATA_DIR/ca`), made there if it is not yet. `share` is handed it
    /// (as one text) and answers the CA to sign with: over a store that several servers share,
    /// the one the store holds, which is then kept in `dir` in place of this server's own.
    pub fn open(
        dir: &Path,
        share: impl FnOnce(String) -> io::Result<String>,
    ) -> io::Result<LocalCa> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        if !cert_path.exists() {
            std::fs::create_dir_all(dir)?;
            let key = KeyPair::generate().map_err(invalid)?;
            let cert = ca_params()?.self_signed(&key).map_err(invalid)?;
            // The key first, private from its first byte; the certificate last, so a crash
            // between the two leaves no certificate without its key.
            crate::write_private(&key_path, &key.serialize_pem())?;
            std::fs::write(&cert_path, cert.pem())?;
        }
        let mine = Pems {
            cert: std::fs::read_to_string(&cert_path)?,
            key: std::fs::read_to_string(&key_path)?,
        };
        let held: Pems =
            serde_json::from_str(&share(serde_json::to_string(&mine).map_err(invalid)?)?)
                .map_err(invalid)?;
        if held != mine {
            crate::write_private(&key_path, &held.key)?;
            std::fs::write(&cert_path, &held.cert)?;
        }
        let key = KeyPair::from_pem(&held.key).map_err(invalid)?;
        // The issuer is the certificate's own parameters (they are fixed) with its key.
        let issuer = Issuer::new(ca_params()?, key);
        Ok(LocalCa {
            cert_pem: held.cert,
            cert_path,
            issuer,
            configs: Mutex::new(HashMap::new()),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// What a client should trust to reach both Google's real hosts and this server's: the
    /// machine's roots (Debian's bundle, else Red Hat's), then this CA.
    pub fn bundle(&self) -> String {
        let mut bundle = SYSTEM_ROOTS
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle + &self.cert_pem
    }

    /// The TLS server configuration for `host`: its certificate, signed by this CA, and ALPN
    /// offering HTTP/2 then HTTP/1.1.
    pub fn server_config(&self, host: &str) -> io::Result<Arc<rustls::ServerConfig>> {
        if let Some(c) = self
            .configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
        {
            return Ok(c.clone());
        }
        let key = KeyPair::generate().map_err(invalid)?;
        let mut params = CertificateParams::new(vec![host.to_string()]).map_err(invalid)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).map_err(invalid)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .map_err(invalid)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = Arc::new(config);
        self.configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), config.clone());
        Ok(config)
    }
}
