//! # runpool-authz — the pure IAM engine of Runpool
//!
//! Google Cloud IAM as data and decisions: the role catalog (Google's 2,461 predefined roles plus
//! custom roles), members as Google writes them, allow policies with what Google does to them on
//! `setIamPolicy` / `getIamPolicy`, IAM Conditions (CEL), and an immutable [`Snapshot`] of the
//! resource hierarchy, policies and groups that answers "may this principal use this permission
//! on this resource" and explains why.
//!
//! Invariants:
//! - **No I/O, no async, no HTTP, no clock.** Everything is a function of its inputs; the request
//!   time comes in through [`RequestContext`]. The role dataset is compiled in (see `build.rs`).
//! - **Snapshots are immutable.** Every `with_*` returns a new [`Snapshot`] sharing all unchanged
//!   parts (`Arc`), so readers on other threads never see a half-applied change. The caller
//!   (`runpool-control`) swaps the current snapshot atomically after each committed write.
//! - **Allow is the union down the hierarchy**: a check looks at the resource and every ancestor;
//!   a resource unknown to the snapshot has no policy and nothing is allowed on it.
//! - **Fail closed**: a condition that cannot be evaluated does not grant; an unknown or deleted
//!   role grants nothing; an unknown permission is never granted.
//! - **Policies given to a snapshot are already [`normalize`]d** (members canonical).
//! - The check path allocates nothing and touches no string hashing for principals (see
//!   `snapshot.rs` for the layout).

pub mod catalog;
pub mod condition;
pub mod cover;
pub mod deny;
pub mod error;
pub mod member;
pub mod policy;
pub mod snapshot;

pub use catalog::{Catalog, PermId, Role};
pub use condition::{Condition, ConditionContext, Tag};
pub use error::PolicyError;
pub use member::{DeletedKind, Member, MemberError};
pub use policy::{Binding, Expr, Policy, for_requested_version, normalize};
pub use snapshot::{
    ConditionOutcome, ExplainedBinding, ExplainedPolicy, Explanation, Grant, Membership, Principal,
    RequestContext, Snapshot, SnapshotBuilder,
};

#[cfg(test)]
mod send_sync {
    #[test]
    fn shared_types_are_send_sync() {
        fn assert_ss<T: Send + Sync>() {}
        assert_ss::<super::Catalog>();
        assert_ss::<super::Snapshot>();
        assert_ss::<super::Principal>();
        assert_ss::<super::Condition>();
    }
}
