//! Members (principal identifiers) as Google writes them in allow policies.

use std::fmt;
use std::str::FromStr;

/// What a `deleted:` member was before deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeletedKind {
    User,
    Group,
    ServiceAccount,
}

impl DeletedKind {
    fn prefix(self) -> &'static str {
        match self {
            DeletedKind::User => "user",
            DeletedKind::Group => "group",
            DeletedKind::ServiceAccount => "serviceAccount",
        }
    }
}

/// One member of a binding. `Display` gives the canonical form (emails lowercased).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    AllUsers,
    AllAuthenticatedUsers,
    User(String),
    Group(String),
    ServiceAccount(String),
    Domain(String),
    Deleted {
        kind: DeletedKind,
        email: String,
        uid: String,
    },
    /// `principal://…`, `principalSet://…` federation identifiers and the legacy convenience
    /// values `projectOwner:P`, `projectEditor:P`, `projectViewer:P`, kept verbatim (they are
    /// case-sensitive resource paths, so they are not lowercased).
    Other(String),
}

/// Why a member string was rejected; `Display` is the text the caller sees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MemberError {
    pub message: String,
}

fn invalid(s: &str) -> MemberError {
    // Google's exact wording for a malformed member is not in our reference; this follows the
    // "Invalid principal: 'x'" shape seen from gcloud and names the accepted forms.
    MemberError {
        message: format!(
            "Invalid principal: '{s}'. Principals must be of the form user:EMAIL, group:EMAIL, \
             serviceAccount:EMAIL, domain:DOMAIN, allUsers, allAuthenticatedUsers, \
             deleted:{{user|group|serviceAccount}}:EMAIL?uid=ID, principal://… or principalSet://…"
        ),
    }
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !local.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != ':' && c != '?')
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && !d.starts_with('.')
        && !d.ends_with('.')
        && d.chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '_')
}

impl FromStr for Member {
    type Err = MemberError;

    /// Prefixes are case-sensitive (`User:x` is rejected, as by Google); emails and domains are
    /// lowercased.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allUsers" => return Ok(Member::AllUsers),
            "allAuthenticatedUsers" => return Ok(Member::AllAuthenticatedUsers),
            _ => {}
        }
        if s.starts_with("principal://") || s.starts_with("principalSet://") {
            let rest = s.split_once("://").map(|x| x.1).unwrap_or("");
            if rest.is_empty() || s.chars().any(char::is_whitespace) {
                return Err(invalid(s));
            }
            return Ok(Member::Other(s.to_string()));
        }
        let Some((prefix, rest)) = s.split_once(':') else {
            return Err(invalid(s));
        };
        let email = |rest: &str| -> Result<String, MemberError> {
            if valid_email(rest) {
                Ok(rest.to_lowercase())
            } else {
                Err(invalid(s))
            }
        };
        match prefix {
            "user" => Ok(Member::User(email(rest)?)),
            "group" => Ok(Member::Group(email(rest)?)),
            "serviceAccount" => Ok(Member::ServiceAccount(email(rest)?)),
            "domain" if valid_domain(rest) => Ok(Member::Domain(rest.to_lowercase())),
            "projectOwner" | "projectEditor" | "projectViewer"
                if !rest.is_empty() && !rest.contains(char::is_whitespace) =>
            {
                Ok(Member::Other(s.to_string()))
            }
            "deleted" => {
                let (kind, rest) = rest.split_once(':').ok_or_else(|| invalid(s))?;
                let kind = match kind {
                    "user" => DeletedKind::User,
                    "group" => DeletedKind::Group,
                    "serviceAccount" => DeletedKind::ServiceAccount,
                    _ => return Err(invalid(s)),
                };
                let (e, uid) = rest.split_once("?uid=").ok_or_else(|| invalid(s))?;
                if uid.is_empty() || !uid.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(invalid(s));
                }
                Ok(Member::Deleted {
                    kind,
                    email: email(e)?,
                    uid: uid.to_string(),
                })
            }
            _ => Err(invalid(s)),
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::AllUsers => f.write_str("allUsers"),
            Member::AllAuthenticatedUsers => f.write_str("allAuthenticatedUsers"),
            Member::User(e) => write!(f, "user:{e}"),
            Member::Group(e) => write!(f, "group:{e}"),
            Member::ServiceAccount(e) => write!(f, "serviceAccount:{e}"),
            Member::Domain(d) => write!(f, "domain:{d}"),
            Member::Deleted { kind, email, uid } => {
                write!(f, "deleted:{}:{email}?uid={uid}", kind.prefix())
            }
            Member::Other(s) => f.write_str(s),
        }
    }
}

impl Member {
    /// `allUsers` or `allAuthenticatedUsers`.
    pub fn is_public(&self) -> bool {
        matches!(self, Member::AllUsers | Member::AllAuthenticatedUsers)
    }

    /// Canonical string of a member, or `None` if it does not parse.
    pub fn canonical(s: &str) -> Option<String> {
        s.parse::<Member>().ok().map(|m| m.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalises() {
        let m: Member = "user:Alice@Example.COM".parse().unwrap();
        assert_eq!(m, Member::User("alice@example.com".into()));
        assert_eq!(m.to_string(), "user:alice@example.com");
        assert_eq!("allUsers".parse::<Member>().unwrap(), Member::AllUsers);
        assert_eq!(
            "domain:Example.com".parse::<Member>().unwrap().to_string(),
            "domain:example.com"
        );
        let d: Member = "deleted:serviceAccount:SA@p.iam.gserviceaccount.com?uid=123"
            .parse()
            .unwrap();
        assert_eq!(
            d,
            Member::Deleted {
                kind: DeletedKind::ServiceAccount,
                email: "sa@p.iam.gserviceaccount.com".into(),
                uid: "123".into()
            }
        );
        assert_eq!(
            d.to_string(),
            "deleted:serviceAccount:sa@p.iam.gserviceaccount.com?uid=123"
        );
        let p = "principalSet://iam.googleapis.com/locations/global/workforcePools/P/group/G";
        assert_eq!(p.parse::<Member>().unwrap().to_string(), p);
    }

    #[test]
    fn rejects_bad_members_with_clear_message() {
        for bad in [
            "usr:bob",
            "User:bob@x.com",
            "user:bob",
            "user:",
            "bob@x.com",
            "alluser",
            "deleted:user:a@b.com",
            "deleted:robot:a@b.com?uid=1",
            "domain:",
            "user:a b@c.com",
        ] {
            let e = bad.parse::<Member>().unwrap_err();
            assert!(
                e.message
                    .starts_with(&format!("Invalid principal: '{bad}'")),
                "{bad}: {e}"
            );
        }
    }
}
