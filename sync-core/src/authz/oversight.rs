//! Who oversees whom: the one rule behind everything a person may do about another person's
//! work — the patrol reminders a supervisor sees, and whose phones a supervisor may sign out.
//!
//! A user oversees themself; an administrator oversees everyone; a supervisor (河长办, 林长办,
//! 田长办 staff) oversees the chiefs of their own system whose division lies inside theirs. A
//! river office does not oversee forest chiefs of the same township, and nobody but an
//! administrator oversees supervisors, handlers or administrators.

use crate::model::{Role, User};

/// Whether `viewer` oversees `user`.
pub fn oversees(viewer: &User, user: &User) -> bool {
    if viewer.id == user.id {
        return true;
    }
    match (&viewer.role, &user.role) {
        (Role::Admin, _) => true,
        (
            Role::Supervisor { system, division },
            Role::Chief {
                system: chief_system,
                jurisdiction,
                ..
            },
        ) => system == chief_system && division.contains(&jurisdiction.division),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DivisionCode, Jurisdiction, Level, System};

    fn user(id: &str, role: Role) -> User {
        User {
            id: id.into(),
            username: id.into(),
            display_name: id.into(),
            role,
            active: true,
        }
    }

    fn code(s: &str) -> DivisionCode {
        DivisionCode::new(s).unwrap()
    }

    fn chief(id: &str, system: System, village: &str) -> User {
        user(
            id,
            Role::Chief {
                system,
                level: Level::Village,
                jurisdiction: Jurisdiction {
                    division: code(village),
                    assets: Vec::new(),
                },
            },
        )
    }

    #[test]
    fn supervisors_oversee_chiefs_of_their_system_inside_their_division() {
        let river_office = user(
            "s-river",
            Role::Supervisor {
                system: System::River,
                division: code("370105014000"),
            },
        );
        let river_chief = chief("c-river", System::River, "370105014201");
        let forest_chief = chief("c-forest", System::Forest, "370105014201");
        let elsewhere = chief("c-far", System::River, "370105015201");
        assert!(oversees(&river_office, &river_chief));
        assert!(!oversees(&river_office, &forest_chief));
        assert!(!oversees(&river_office, &elsewhere));
        assert!(!oversees(&river_chief, &river_office));
        assert!(!oversees(&river_chief, &forest_chief));
        let other_office = user(
            "s-river-2",
            Role::Supervisor {
                system: System::River,
                division: code("370105014000"),
            },
        );
        assert!(!oversees(&river_office, &other_office));
    }

    #[test]
    fn everyone_oversees_themself_and_admins_everyone() {
        let admin = user("a", Role::Admin);
        let handler = user(
            "h",
            Role::Handler {
                department: "water".into(),
            },
        );
        let river_chief = chief("c", System::River, "370105014201");
        for u in [&admin, &handler, &river_chief] {
            assert!(oversees(u, u));
            assert!(oversees(&admin, u));
        }
        assert!(!oversees(&handler, &river_chief));
        assert!(!oversees(&river_chief, &admin));
    }
}
