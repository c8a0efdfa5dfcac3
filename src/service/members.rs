//! Members: the members CSV (SPEC section 8), streamed from the store.

use crate::domain::csv;
use crate::domain::model::{Group, MemberRow};
use crate::domain::roles::Policy;
use crate::store::{MemberFilter, Store};
use std::sync::Arc;

pub const CSV_HEADER: [&str; 11] = [
    "user_id",
    "email",
    "name",
    "status",
    "roles",
    "groups",
    "auth_method",
    "twilio_linked",
    "mfa_enabled",
    "created_at",
    "last_login_at",
];

/// One CSV record for a member: effective roles (own and through groups)
/// with scopes, `;`-separated; group names likewise.
pub fn csv_record(m: &MemberRow, groups: &[Group]) -> String {
    let mut effective: Vec<Policy> = m.policies.clone();
    for g in groups.iter().filter(|g| m.group_ids.contains(&g.id)) {
        for p in &g.policies {
            if !effective.contains(p) {
                effective.push(p.clone());
            }
        }
    }
    let roles = effective
        .iter()
        .map(|p| p.label())
        .collect::<Vec<_>>()
        .join(";");
    let group_names = groups
        .iter()
        .filter(|g| m.group_ids.contains(&g.id))
        .map(|g| g.name.clone())
        .collect::<Vec<_>>()
        .join(";");
    csv::row(&[
        if m.invited {
            String::new()
        } else {
            m.id.clone()
        },
        m.email.clone(),
        m.name.clone(),
        if m.invited {
            "invited".into()
        } else {
            "active".into()
        },
        roles,
        group_names,
        m.auth_method.clone().unwrap_or_default(),
        m.twilio_linked.to_string(),
        m.mfa_enabled.to_string(),
        crate::clock::rfc3339(m.created_at),
        m.last_login_at
            .map(crate::clock::rfc3339)
            .unwrap_or_default(),
    ])
}

/// Streams the member list as CSV, a page at a time, so memory stays flat
/// whatever the workspace size.
pub fn csv_stream(
    store: Arc<dyn Store>,
    workspace_id: String,
    now: i64,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send {
    struct St {
        store: Arc<dyn Store>,
        ws: String,
        cursor: Option<String>,
        groups: Option<Vec<Group>>,
        header_sent: bool,
        done: bool,
    }
    let init = St {
        store,
        ws: workspace_id,
        cursor: None,
        groups: None,
        header_sent: false,
        done: false,
    };
    futures_util::stream::unfold(init, move |mut st| async move {
        if st.done {
            return None;
        }
        if !st.header_sent {
            st.header_sent = true;
            return Some((Ok(csv::row(&CSV_HEADER)), st));
        }
        if st.groups.is_none() {
            match st.store.list_groups(&st.ws).await {
                Ok(g) => st.groups = Some(g),
                Err(e) => {
                    st.done = true;
                    return Some((Err(std::io::Error::other(e.to_string())), st));
                }
            }
        }
        let filter = MemberFilter {
            include_invited: true,
            ..Default::default()
        };
        match st
            .store
            .list_members(&st.ws, &filter, st.cursor.as_deref(), 500, now)
            .await
        {
            Ok(rows) if rows.is_empty() => None,
            Ok(rows) => {
                let groups = st.groups.clone().unwrap_or_default();
                let mut chunk = String::new();
                for (_, m) in &rows {
                    chunk.push_str(&csv_record(m, &groups));
                }
                st.cursor = rows.last().map(|(c, _)| c.clone());
                if rows.len() < 500 {
                    st.done = true;
                }
                Some((Ok(chunk), st))
            }
            Err(e) => {
                st.done = true;
                Some((Err(std::io::Error::other(e.to_string())), st))
            }
        }
    })
}
