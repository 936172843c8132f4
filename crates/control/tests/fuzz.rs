//! Fuzzing the parsers of user input that live in control (bounded: a fixed number of
//! cases): tag conditions of org policy and deny rules, and world YAML. Whatever the text,
//! each answers (a value or a refusal): no panic, no stack overflow.

use proptest::prelude::*;
use runpool_control::resourcemanager::tag_condition::TagCondition;
use runpool_control::world::World;

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
        if depth > runpool_authz::condition::MAX_NESTING {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn any_text_is_a_world_or_refused(text in "[\\[\\]{}:,\\-'\" \n a-z0-9&*!|>]{0,400}") {
        let _ = World::from_yaml(&text);
    }

    #[test]
    fn deeply_nested_yaml_is_refused(depth in 0usize..50_000, flow in any::<bool>()) {
        // Collections past the bound are refused before the parser reads them.
        let text = if flow {
            format!("organizations: {}{}", "[".repeat(depth), "]".repeat(depth))
        } else {
            (0..depth.min(2_000)).map(|i| format!("{}- \n", " ".repeat(i))).collect()
        };
        let r = World::from_yaml(&text);
        if depth > 2 * runpool_control::base::yaml::MAX_NESTING + 1 {
            prop_assert!(r.is_err());
        }
    }
}
