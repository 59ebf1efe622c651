//! A tree's records as last listed, parsed: divisions and assets are read whole on every
//! reference-data request (each phone asks after each sync) and written only by administrators.
//! Parsing every asset's geometry from JSON on each request costs more than choosing which
//! assets the phone gets, so the parsed list is kept.
//!
//! A write drops the list after it reached sled; a listing that read sled before a write ends
//! does not keep what it read (the generation tells), so the list is never older than sled.

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct Kept<T> {
    generation: u64,
    list: Option<Arc<Vec<T>>>,
}

#[derive(Debug)]
pub struct Listed<T> {
    kept: Mutex<Kept<T>>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Self {
            kept: Mutex::new(Kept {
                generation: 0,
                list: None,
            }),
        }
    }
}

impl<T: Clone> Listed<T> {
    fn kept(&self) -> MutexGuard<'_, Kept<T>> {
        // Every update below is one assignment, so a poisoned lock holds nothing half-done.
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The list as kept, or as `read` from the store (and then kept).
    pub fn get_or<E>(&self, read: impl FnOnce() -> Result<Vec<T>, E>) -> Result<Vec<T>, E> {
        let generation = {
            let kept = self.kept();
            if let Some(list) = &kept.list {
                return Ok(list.as_ref().clone());
            }
            kept.generation
        };
        let list = read()?;
        let mut kept = self.kept();
        if kept.generation == generation {
            kept.list = Some(Arc::new(list.clone()));
        }
        Ok(list)
    }

    /// Drops the kept list; call after every write has reached the store.
    pub fn changed(&self) {
        let mut kept = self.kept();
        kept.generation += 1;
        kept.list = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_drops_the_list_and_a_listing_overtaken_by_a_write_is_not_kept() {
        let listed: Listed<u32> = Listed::default();
        let read = |v: Vec<u32>| move || Ok::<_, ()>(v);
        assert_eq!(listed.get_or(read(vec![1])), Ok(vec![1]));
        assert_eq!(listed.get_or(read(vec![9])), Ok(vec![1]), "kept");
        listed.changed();
        assert_eq!(listed.get_or(read(vec![1, 2])), Ok(vec![1, 2]));
        // A write lands while a listing is reading: what it read is answered, not kept.
        listed.changed();
        let overtaken = listed.get_or(|| {
            listed.changed();
            Ok::<_, ()>(vec![7])
        });
        assert_eq!(overtaken, Ok(vec![7]));
        assert_eq!(listed.get_or(read(vec![1, 2, 3])), Ok(vec![1, 2, 3]));
        assert_eq!(
            listed.get_or(|| Err::<Vec<u32>, _>("unreachable")),
            Ok(vec![1, 2, 3])
        );
    }
}
