//! Exercise 10, consistent hash: three real servers behind the learner's
//! proxy, which hashes each request's path onto a ring of crc32 points, ten
//! virtual nodes per upstream (the article's ConsistentHashBanlance).
//!
//! The check builds the same ring from the URLs it gave the program and
//! picks one key (a path) in every arc of it, the wrap-round arc included,
//! so every virtual node and the wrap are exercised and the answer for each
//! key is known. Then upstream c leaves the configuration (the program is
//! restarted without it): only c's keys may move.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;

/// Virtual nodes per upstream, as the exercise's skeleton has it.
const REPLICAS: usize = 10;

/// The article's ring: sorted points, each with its upstream's index.
struct Ring {
    points: Vec<(u32, usize)>,
}

impl Ring {
    /// `urls[i]` is upstream i as the program was given it.
    fn new(urls: &[(usize, String)]) -> Ring {
        let mut points: Vec<(u32, usize)> = urls
            .iter()
            .flat_map(|(index, url)| {
                (0..REPLICAS)
                    .map(move |i| (crc32fast::hash(format!("{i}{url}").as_bytes()), *index))
            })
            .collect();
        points.sort();
        Ring { points }
    }

    /// The upstream of `key`: the first point at or after its hash, else the first.
    fn owner(&self, key: &str) -> usize {
        let hash = crc32fast::hash(key.as_bytes());
        let at = self.points.partition_point(|(p, _)| *p < hash);
        self.points.get(at).unwrap_or(&self.points[0]).1
    }

    /// One key in every arc: (before the first point], each (p[i-1], p[i]],
    /// and the wrap-round arc after the last point.
    fn keys_for_every_arc(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let bounds: Vec<u32> = self.points.iter().map(|(p, _)| *p).collect();
        let arc = |hash: u32| bounds.partition_point(|p| *p < hash);
        let mut found = vec![false; bounds.len() + 1];
        for n in 0..200_000 {
            let key = format!("/k{n}");
            let a = arc(crc32fast::hash(key.as_bytes()));
            if !found[a] {
                found[a] = true;
                keys.push(key);
                if found.iter().all(|f| *f) {
                    break;
                }
            }
        }
        keys
    }
}

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let urls: Vec<(usize, String)> = s
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, a)| (i, format!("http://{a}{}", s.restart.path)))
            .collect();
        let ring = Ring::new(&urls);
        let keys = ring.keys_for_every_arc();
        let letter = |i: usize| ((b'a' + i as u8) as char).to_string();

        let wanted: Vec<String> = keys.iter().map(|k| letter(ring.owner(k))).collect();
        let first = owners(s, &keys).await;
        let wrong: Vec<String> = keys
            .iter()
            .zip(wanted.iter().zip(&first))
            .filter(|(_, (w, g))| w != g)
            .map(|(k, (w, g))| format!("{k}→{g} (not {w})"))
            .collect();
        s.judge(
            "matches-the-ring",
            "a key in every arc of the ring (crc32, 10 virtual nodes each) reaches the upstream \
             of the first point at or after it",
            format!("all {} keys where the ring puts them", keys.len()),
            if wrong.is_empty() {
                format!("all {} keys where the ring puts them", keys.len())
            } else {
                format!(
                    "{} of {} elsewhere: {}",
                    wrong.len(),
                    keys.len(),
                    wrong.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                )
            },
            wrong.is_empty(),
        );

        // Every upstream owns ten arcs, so every one serves some of the keys.
        let mut served: Vec<&String> = first.iter().filter(|l| l.len() == 1).collect();
        served.sort();
        served.dedup();
        s.point(
            "spread",
            "the keys spread over every upstream",
            "a b c",
            served
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );

        let again = owners(s, &keys).await;
        let changed = first.iter().zip(&again).filter(|(a, b)| a != b).count();
        s.point(
            "sticky",
            "the same keys again: every one to the same upstream as before",
            "0 keys changed upstream",
            format!("{changed} keys changed upstream"),
        );

        // c leaves the configuration: the program starts again with a and b.
        s.restart_program_with(&[0, 1]).await?;
        let without_c = Ring::new(&urls[..2]);
        let after = owners(s, &keys).await;
        let stayed_wrong = keys
            .iter()
            .enumerate()
            .filter(|&(i, _)| wanted[i] != "c" && after[i] != wanted[i])
            .count();
        let c_keys: Vec<usize> = (0..keys.len()).filter(|&i| wanted[i] == "c").collect();
        let c_wrong = c_keys
            .iter()
            .filter(|&&i| after[i] != letter(without_c.owner(&keys[i])))
            .count();
        s.judge(
            "few-move",
            "c leaves: a's and b's keys stay where they were; only c's move, each to the next \
             point on the ring",
            format!("{} of c's keys moved, none of the others", c_keys.len()),
            format!(
                "{} of the others moved; {} of c's {} keys went elsewhere than the ring says",
                stayed_wrong,
                c_wrong,
                c_keys.len()
            ),
            stayed_wrong == 0 && c_wrong == 0,
        );
        Ok(())
    }
    .boxed()
}

/// Which upstream answered each key (its path), or what came instead.
async fn owners(s: &Session, keys: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for key in keys {
        out.push(s.who_answers(key).await);
    }
    out
}
