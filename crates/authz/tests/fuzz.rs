//! Fuzzing the condition parsers (bounded: a fixed number of cases): CEL of allow bindings,
//! and the tag conditions of org policy and deny rules.
//! Whatever the text, compiling answers (a condition or a refusal) and evaluating what
//! compiled answers too: no panic escapes and no nesting overflows the stack.

use proptest::prelude::*;
use runpool_authz::condition::tags::TagCondition;
use runpool_authz::condition::{Condition, ConditionContext, MAX_NESTING};

fn ctx() -> ConditionContext<'static> {
    ConditionContext {
        request_time: chrono::Utc::now(),
        resource_name: "projects/p",
        resource_type: "cloudresourcemanager.googleapis.com/Project",
        resource_service: "cloudresourcemanager.googleapis.com",
        tags: &[],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_tag_condition_or_refused(expr in "[()!&|'\" .,a-zA-Z0-9/_-]{0,300}") {
        let _ = TagCondition::parse(&expr);
    }

    #[test]
    fn tag_condition_pieces_in_any_order(parts in prop::collection::vec(prop::sample::select(vec![
        "resource.matchTag(", "resource.hasTagKey(", "resource.matchTagId(", "'1/env'", "'dev'",
        "'tagKeys/1'", "'tagValues/2'", ",", ")", "(", "!", " && ", " || ",
    ]), 0..200)) {
        let _ = TagCondition::parse(&parts.concat());
    }

    #[test]
    fn deep_tag_conditions_are_refused(depth in 0usize..100_000) {
        let expr = format!("{}resource.hasTagKey('1/env'){}", "(".repeat(depth), ")".repeat(depth));
        let r = TagCondition::parse(&expr);
        if depth > MAX_NESTING {
            prop_assert!(r.is_err());
        }
    }


    #[test]
    fn any_text_compiles_or_is_refused(expr in "[()\\[\\]{}!&|<>=+*/%?:.,'\" a-z0-9_-]{0,300}") {
        if let Ok(c) = Condition::compile(&expr) {
            let _ = c.eval_detailed(&ctx());
        }
    }

    #[test]
    fn pieces_of_real_conditions_in_any_order(parts in prop::collection::vec(prop::sample::select(vec![
        "request.time", "<", "timestamp(\"2026-01-01T00:00:00Z\")", "&&", "||", "!", "(", ")",
        "resource.name", ".startsWith(", "\"projects/p\"", "resource.matchTag(", "'1/env'", ",",
        "'dev'", "true", "false", "[", "]", "-", "1", "+", "in", "{", "}", ":",
    ]), 0..120)) {
        let expr = parts.concat();
        if let Ok(c) = Condition::compile(&expr) {
            let _ = c.eval_detailed(&ctx());
        }
    }

    #[test]
    fn a_string_literal_cannot_hide_nesting(depth in 33usize..2_000, prefix in prop::sample::select(vec![
        r#"r'\' == "#, r#"''' ' ''' == "#, r#""\" == "#, "'a' + ", r#"R"\" == "#,
    ])) {
        let expr = format!("{prefix}{}1{}", "(".repeat(depth), ")".repeat(depth));
        prop_assert!(Condition::compile(&expr).is_err(), "{}", expr);
    }

    #[test]
    fn nesting_past_the_bound_is_refused(depth in 0usize..20_000, kind in 0usize..4) {
        let (open, close) = [("(", ")"), ("[", "]"), ("!", ""), ("-", "")][kind];
        let expr = format!("{}true{}", open.repeat(depth), close.repeat(depth));
        let r = Condition::compile(&expr);
        if depth > MAX_NESTING {
            prop_assert!(r.is_err());
        }
    }
}
