//! Fuzzing the parsers of user input that live in control (bounded: a fixed number of
//! cases): world YAML. Whatever the text,
//! each answers (a value or a refusal): no panic, no stack overflow.

use proptest::prelude::*;
use runpool_control::world::World;

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

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
