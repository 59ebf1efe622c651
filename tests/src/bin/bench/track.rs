//! `track`: bytes per point of a 1 Hz walking track in a saved patrol document, stored as
//! ChiefSync's compact chunks and, side by side, as the naive list of one map per point.

use automerge::{transaction::Transactable, AutoCommit, ObjType, ROOT};
use sync_core::doc::{actor_for, NewPatrol, PatrolDoc, Record};
use sync_core::model::{DivisionCode, System, TrackPoint};
use sync_core::track;

const T0: i64 = 1_764_288_000_000;

fn patrol() -> PatrolDoc {
    PatrolDoc::create(
        actor_for(1),
        &NewPatrol {
            system: System::River,
            asset: "xqh-01".into(),
            chief: "u-chief".into(),
            division: DivisionCode::new("370105014201").expect("valid code"),
            device: "bench".into(),
            started_at_ms: T0,
        },
    )
    .expect("new patrol")
}

fn compact_bytes(points: &[TrackPoint]) -> f64 {
    let mut doc = patrol();
    let empty = doc.save().len();
    for chunk in points.chunks(track::CHUNK_POINTS) {
        doc.append_track(chunk).expect("append chunk");
    }
    (doc.save().len() - empty) as f64 / points.len() as f64
}

fn list_of_maps_bytes(points: &[TrackPoint]) -> f64 {
    let mut doc = AutoCommit::new().with_actor(actor_for(1));
    let list = doc
        .put_object(ROOT, "track", ObjType::List)
        .expect("track list");
    let empty = doc.save().len();
    for (i, p) in points.iter().enumerate() {
        let map = doc
            .insert_object(&list, i, ObjType::Map)
            .expect("point map");
        doc.put(&map, "lat", p.lat).expect("lat");
        doc.put(&map, "lon", p.lon).expect("lon");
        doc.put(&map, "t", p.t_ms).expect("t");
        doc.put(&map, "acc", f64::from(p.accuracy_m)).expect("acc");
        if (i + 1) % track::CHUNK_POINTS == 0 {
            doc.commit();
        }
    }
    (doc.save().len() - empty) as f64 / points.len() as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn run(points: usize, runs: u64) {
    let mut compact = Vec::new();
    let mut maps = Vec::new();
    for seed in 0..runs.max(1) {
        let walk = track::walking_track(36.742, 116.985, T0, points, seed);
        compact.push(compact_bytes(&walk));
        maps.push(list_of_maps_bytes(&walk));
    }
    let (compact, maps) = (median(compact), median(maps));
    println!("track: {points} points at 1 Hz, median of {runs} seeded walks");
    println!("  compact chunks : {compact:.2} bytes/point in the saved patrol document");
    println!("  list of maps   : {maps:.2} bytes/point (one automerge map per point)");
    println!("  ratio          : {:.1}x smaller", maps / compact);
}
