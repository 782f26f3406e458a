//! Trending and "open source you may like".
//!
//! Recommendations follow the seed's rule: for a visitor with a try history, each category's share
//! is its tries over all their tries; of `n` slots a category gets `round(n × share)`, by largest
//! remainders so the slots sum to `n`. Each category's slots are filled with the platform's
//! most-tried projects in it, skipping what the visitor tried in the last day; slots left over
//! (a category with too few projects) come from trending. No history: trending.
use crate::entities::{
    project::{self, Entity as Project},
    sandbox::{self, Entity as Sandbox},
};
use crate::projects;
use sea_orm::{prelude::*, sea_query::Query, QueryOrder, QuerySelect};
use std::collections::HashSet;
use vocab::OwnerKey;

/// How many slots each category gets: `(category, slots)`, largest share first.
///
/// Hamilton's method: every category gets the floor of its quota `n × count / total`; the slots
/// still free go one each to the largest fractional remainders. Ties on the remainder go to the
/// category with more tries, then alphabetically, so the result is deterministic.
pub fn allocate_slots(counts: &[(String, i64)], n: usize) -> Vec<(String, usize)> {
    let counts: Vec<&(String, i64)> = counts.iter().filter(|(_, c)| *c > 0).collect();
    let total: i64 = counts.iter().map(|(_, c)| c).sum();
    if total == 0 || n == 0 {
        return Vec::new();
    }
    // Integer arithmetic: quota = n·c / total, remainder = (n·c) mod total — exact, no float ties.
    let mut rows: Vec<(String, i64, usize, i64)> = counts
        .iter()
        .map(|(cat, c)| {
            let scaled = n as i64 * c;
            (cat.clone(), *c, (scaled / total) as usize, scaled % total)
        })
        .collect();
    let given: usize = rows.iter().map(|r| r.2).sum();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        rows[b]
            .3
            .cmp(&rows[a].3)
            .then(rows[b].1.cmp(&rows[a].1))
            .then(rows[a].0.cmp(&rows[b].0))
    });
    for &i in order.iter().take(n.saturating_sub(given)) {
        rows[i].2 += 1;
    }
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
    rows.into_iter()
        .filter(|r| r.2 > 0)
        .map(|r| (r.0, r.2))
        .collect()
}

const TRENDING_DAYS: i64 = 7;

/// Distinct (identity, day) pairs: the same SQL on SQLite and PostgreSQL.
const TRIES_PER_IDENTITY_AND_DAY: &str =
    "COUNT(DISTINCT sandboxes.owner || ':' || date(sandboxes.created_at))";

/// Live projects with the most tries in the last 7 days (one per identity per project per day:
/// reloading or re-trying does not push a project up); when the week is quiet (fewer than
/// `limit` projects tried), the rest are the all-time most tried.
pub async fn trending(db: &DatabaseConnection, limit: u64) -> Result<Vec<project::Model>, DbErr> {
    let since = chrono::Utc::now() - chrono::Duration::days(TRENDING_DAYS);
    let weekly: Vec<(i32, i64)> = Sandbox::find()
        .select_only()
        .column(sandbox::Column::ProjectId)
        .column_as(Expr::cust(TRIES_PER_IDENTITY_AND_DAY), "n")
        .filter(sandbox::Column::CreatedAt.gte(since))
        .filter(sandbox::Column::Owner.ne(OwnerKey::Pool))
        .filter(
            sandbox::Column::ProjectId.in_subquery(
                Query::select()
                    .column(project::Column::Id)
                    .from(Project)
                    .and_where(project::Column::Status.eq(crate::states::ProjectStatus::Live))
                    .and_where(project::Column::Listed.eq(true))
                    .to_owned(),
            ),
        )
        .group_by(sandbox::Column::ProjectId)
        .order_by_desc(Expr::cust(TRIES_PER_IDENTITY_AND_DAY))
        .order_by_asc(sandbox::Column::ProjectId)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    let ids: Vec<i32> = weekly.iter().map(|(id, _)| *id).collect();
    let mut rows = live_by_ids(db, &ids).await?;
    rows.sort_by_key(|p| ids.iter().position(|id| *id == p.id));
    if (rows.len() as u64) < limit {
        let seen: HashSet<i32> = rows.iter().map(|p| p.id).collect();
        let fill = projects::most_tried(db, limit + seen.len() as u64).await?;
        rows.extend(fill.into_iter().filter(|p| !seen.contains(&p.id)));
        rows.truncate(limit as usize);
    }
    Ok(rows)
}

async fn live_by_ids(db: &DatabaseConnection, ids: &[i32]) -> Result<Vec<project::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Project::find()
        .filter(project::Column::Id.is_in(ids.iter().copied()))
        .filter(project::Column::Status.eq(crate::states::ProjectStatus::Live))
        .filter(project::Column::Listed.eq(true))
        .all(db)
        .await
}

/// "Open source you may like" for one visitor, and whether it follows their own history.
pub struct Recommendations {
    pub items: Vec<project::Model>,
    /// False without a try history (then the items are a tour of the categories).
    pub personal: bool,
}

/// "Open source you may like" for one visitor (owner key), `n` projects. A newcomer (no history)
/// gets a tour instead: the most tried project of each category, leaving out `shown` (what the
/// page already shows, Trending), so the section never repeats it; it may be empty.
pub async fn for_owner(
    db: &DatabaseConnection,
    owner: &vocab::OwnerKey,
    n: usize,
    shown: &[i32],
) -> Result<Recommendations, DbErr> {
    let counts = crate::sandboxes::tries_by_category(db, owner).await?;
    let personal = counts.iter().any(|(_, c)| *c > 0);
    if !personal {
        return Ok(Recommendations {
            items: tour(db, n, shown).await?,
            personal,
        });
    }
    let slots = allocate_slots(&counts, n);
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    let recent: HashSet<i32> = Sandbox::find()
        .select_only()
        .column(sandbox::Column::ProjectId)
        .filter(sandbox::Column::Owner.eq(owner))
        .filter(sandbox::Column::CreatedAt.gte(since))
        .into_tuple::<i32>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut picked: Vec<project::Model> = Vec::with_capacity(n);
    for (category, k) in slots {
        let candidates = Project::find()
            .filter(project::Column::Status.eq(crate::states::ProjectStatus::Live))
            .filter(project::Column::Listed.eq(true))
            .filter(project::Column::Category.eq(category))
            .order_by_desc(project::Column::Tries)
            .order_by_asc(project::Column::Name)
            .limit((k + recent.len()) as u64)
            .all(db)
            .await?;
        picked.extend(
            candidates
                .into_iter()
                .filter(|p| !recent.contains(&p.id))
                .take(k),
        );
    }
    if picked.len() < n {
        let skip: HashSet<i32> = picked.iter().map(|p| p.id).chain(recent).collect();
        let fill = trending(db, (n + skip.len()) as u64).await?;
        let missing = n - picked.len();
        picked.extend(
            fill.into_iter()
                .filter(|p| !skip.contains(&p.id))
                .take(missing),
        );
    }
    Ok(Recommendations {
        items: picked,
        personal,
    })
}

/// One project per category, each the category's most tried one not in `shown`; the categories
/// whose pick is tried most first.
async fn tour(
    db: &DatabaseConnection,
    n: usize,
    shown: &[i32],
) -> Result<Vec<project::Model>, DbErr> {
    let mut picked = Vec::new();
    for category in projects::CATEGORIES {
        let mut q = Project::find()
            .filter(project::Column::Status.eq(crate::states::ProjectStatus::Live))
            .filter(project::Column::Category.eq(*category));
        if !shown.is_empty() {
            q = q.filter(project::Column::Id.is_not_in(shown.iter().copied()));
        }
        let best = q
            .order_by_desc(project::Column::Tries)
            .order_by_asc(project::Column::Name)
            .one(db)
            .await?;
        picked.extend(best);
    }
    picked.sort_by(|a, b| b.tries.cmp(&a.tries).then_with(|| a.name.cmp(&b.name)));
    picked.truncate(n);
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::allocate_slots;

    fn counts(v: &[(&str, i64)]) -> Vec<(String, i64)> {
        v.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    }

    fn alloc(v: &[(&str, i64)], n: usize) -> Vec<(String, usize)> {
        allocate_slots(&counts(v), n)
    }

    fn expect(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    }

    #[test]
    fn seed_example_six_two_two() {
        let got = alloc(&[("AI", 2), ("Cloud", 6), ("System", 2)], 10);
        assert_eq!(got, expect(&[("Cloud", 6), ("AI", 2), ("System", 2)]));
    }

    #[test]
    fn no_history_gets_no_slots() {
        assert!(alloc(&[], 10).is_empty());
        assert!(alloc(&[("AI", 0)], 10).is_empty());
    }

    #[test]
    fn one_category_takes_every_slot() {
        assert_eq!(alloc(&[("Databases", 3)], 10), expect(&[("Databases", 10)]));
    }

    #[test]
    fn largest_remainders_sum_to_n() {
        // Quotas 3.33 / 3.33 / 3.33: one extra slot, tie broken by name.
        let got = alloc(&[("B", 1), ("A", 1), ("C", 1)], 10);
        assert_eq!(got, expect(&[("A", 4), ("B", 3), ("C", 3)]));
        // Quotas 5.71 / 2.86 / 1.43 → floors 5/2/1, remainders .71 .86 .43: 6 / 3 / 1.
        let got = alloc(&[("x", 4), ("y", 2), ("z", 1)], 10);
        assert_eq!(got, expect(&[("x", 6), ("y", 3), ("z", 1)]));
    }

    #[test]
    fn tie_on_remainder_goes_to_more_tries_then_name() {
        // n=3, counts 1/1/1/1 → each quota .75: three slots for four equal categories.
        let got = alloc(&[("d", 1), ("c", 1), ("b", 1), ("a", 1)], 3);
        assert_eq!(got, expect(&[("a", 1), ("b", 1), ("c", 1)]));
    }

    #[test]
    fn tiny_share_can_round_to_zero() {
        let got = alloc(&[("big", 99), ("small", 1)], 10);
        assert_eq!(got, expect(&[("big", 10)]));
    }

    #[test]
    fn sums_to_n_for_many_shapes() {
        for n in 1..=12 {
            for shape in [
                &[1i64, 2, 3][..],
                &[7, 7],
                &[1, 1, 1, 1, 1, 1, 1],
                &[100, 1, 1],
            ] {
                let c: Vec<(String, i64)> = shape
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("c{i}"), *k))
                    .collect();
                let total: usize = allocate_slots(&c, n).iter().map(|(_, k)| k).sum();
                assert_eq!(total, n, "n={n} shape={shape:?}");
            }
        }
    }
}
