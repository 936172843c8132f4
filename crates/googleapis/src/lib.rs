//! Google's API definitions, compiled at build time from Google's `.proto` files (see
//! `build.rs`): the messages of every gRPC service Runpool serves and each method's
//! `google.api.http` rule, which is how a gRPC call becomes its REST call.

use prost_reflect::DescriptorPool;
use std::sync::LazyLock;

/// The compiled `FileDescriptorSet`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/googleapis.binpb"));

/// The gRPC services Runpool serves, by full name.
pub const SERVICES: &[&str] = &[
    "google.cloud.run.v2.WorkerPools",
    "google.cloud.run.v2.Revisions",
    "google.longrunning.Operations",
    "google.iam.admin.v1.IAM",
    "google.iam.credentials.v1.IAMCredentials",
    "google.iam.v2.Policies",
    "google.cloud.resourcemanager.v3.Organizations",
    "google.cloud.resourcemanager.v3.Folders",
    "google.cloud.resourcemanager.v3.Projects",
    "google.cloud.resourcemanager.v3.TagKeys",
    "google.cloud.resourcemanager.v3.TagValues",
    "google.cloud.resourcemanager.v3.TagBindings",
    "google.cloud.orgpolicy.v2.OrgPolicy",
    "google.cloud.recommender.v1.Recommender",
    "google.cloud.policytroubleshooter.iam.v3.PolicyTroubleshooter",
    "google.cloud.policytroubleshooter.v1.IamChecker",
    "google.api.serviceusage.v1.ServiceUsage",
];

/// The pool, decoded on first use (a few milliseconds, paid by the first gRPC call rather
/// than by every start).
pub fn pool() -> &'static DescriptorPool {
    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("the embedded descriptor set decodes")
    });
    &POOL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_service_is_in_the_pool_with_its_http_rules() {
        let http = pool()
            .get_extension_by_name("google.api.http")
            .expect("google.api.http is known");
        for name in SERVICES {
            let service = pool()
                .get_service_by_name(name)
                .unwrap_or_else(|| panic!("{name} is in the pool"));
            let ruled = service
                .methods()
                .filter(|m| m.options().has_extension(&http))
                .count();
            // Operations' rules are the API's own (its service config), not the proto's.
            assert!(
                ruled > 0 || *name == "google.longrunning.Operations",
                "{name} has http rules"
            );
        }
    }
}
