//! Batches, and a data loader whose every epoch is a pure function of
//! `(seed, epoch)`: the order of the samples, their augmentation and the
//! tensor random stream (dropout). A run resumed at epoch `k` therefore sees
//! exactly what an uninterrupted run sees from epoch `k + 1` on, which Burn's
//! own loader (one random stream from the start) cannot give.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use imaging::{BorderWeight, weight_map};

use crate::data::{Augmentation, DataError, Sample, mix};

/// A batch of images and masks of one size.
#[derive(Debug, Clone)]
pub struct SegmentationBatch {
    /// `[batch, channels, height, width]`, pixel values as the model takes them.
    pub images: Tensor<4>,
    /// `[batch, height, width]`, class indices.
    pub masks: Tensor<3, Int>,
    /// `[batch, height, width]`: the loss weight of each pixel (the U-Net
    /// paper's weight map), when the run uses one.
    pub weights: Option<Tensor<3>>,
    /// This batch's share of the optimizer step it belongs to: its samples
    /// over the step's. 1 on one device; with several devices each takes a
    /// part of one batch, and its loss is scaled by its share so that the
    /// summed gradients are those of the whole batch's mean loss.
    pub share: f32,
}

impl SegmentationBatch {
    /// Stacks samples of equal size into tensors on `device`.
    ///
    /// # Panics
    /// If `samples` is empty or the samples differ in size: datasets are
    /// checked for equal sizes when they are opened.
    pub fn new(samples: &[Sample], device: &Device) -> Self {
        let first = samples.first().expect("a batch has at least one sample");
        let (c, h, w) = (first.channels, first.height, first.width);
        let mut images = Vec::with_capacity(samples.len() * c * h * w);
        let mut masks = Vec::with_capacity(samples.len() * h * w);
        for sample in samples {
            assert_eq!(
                (sample.channels, sample.height, sample.width),
                (c, h, w),
                "samples of one batch have one size"
            );
            images.extend_from_slice(&sample.image);
            masks.extend(sample.mask.iter().map(|&class| class as i64));
        }
        let n = samples.len();
        Self {
            images: Tensor::from_data(TensorData::new(images, [n, c, h, w]), device),
            masks: Tensor::from_data(TensorData::new(masks, [n, h, w]), device),
            weights: None,
            share: 1.0,
        }
    }

    /// [`SegmentationBatch::new`] with each sample's loss weight map, from
    /// its instance labels, where `border` asks for one.
    pub fn weighted(
        samples: &[Sample],
        border: Option<&BorderWeight>,
        device: &Device,
    ) -> Result<Self, DataError> {
        let mut batch = Self::new(samples, device);
        let Some(border) = border else {
            return Ok(batch);
        };
        let mut weights = Vec::with_capacity(samples.len() * samples[0].mask.len());
        for sample in samples {
            let labels = sample.labels.as_ref().ok_or(DataError::NoLabels)?;
            let map = weight_map(labels, sample.height, sample.width, border).map_err(|err| {
                DataError::Augment {
                    reason: err.to_string(),
                }
            })?;
            weights.extend(map);
        }
        let [n, h, w] = batch.masks.dims();
        batch.weights = Some(Tensor::from_data(
            TensorData::new(weights, [n, h, w]),
            device,
        ));
        Ok(batch)
    }
}

/// How a [`EpochLoader`] walks its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Order {
    /// In index order, as they are (validation).
    Sequential,
    /// A fresh permutation each epoch, each sample augmented at random;
    /// also reseeds the device's random stream at each epoch.
    Shuffled {
        /// The run's seed.
        seed: u64,
        /// How samples are augmented.
        augmentation: Augmentation,
        /// Samples per epoch: passes over the (reshuffled) samples are
        /// chained until there are this many; `None` is one pass.
        epoch_samples: Option<usize>,
    },
}

/// Batches of a dataset, epoch after epoch. Each call to
/// [`DataLoader::iter`] is the next epoch.
///
/// For several devices ([`EpochLoader::with_devices`]), burn-train splits
/// the loader with [`DataLoader::slice`] into one shard per device. Shard
/// `k` of `n` serves, of every batch the whole loader would serve, the
/// positions `[k r / n, (k + 1) r / n)` (`r` that batch's size), with the
/// same samples and augmentation: the shards' batches of one step together
/// are the one-device batch.
pub struct EpochLoader {
    dataset: Arc<dyn Dataset<Sample>>,
    indices: Vec<usize>,
    batch_size: usize,
    order: Order,
    border: Option<BorderWeight>,
    next_epoch: Arc<AtomicUsize>,
    device: Device,
    /// The devices [`DataLoader::slice`] splits batches between.
    devices: usize,
    /// This loader's part of each batch, when it is a slice.
    shard: Option<usize>,
}

impl EpochLoader {
    /// A loader over `indices` of `dataset`, starting at epoch `first_epoch`
    /// (1 for a fresh run, `k + 1` when resuming after epoch `k`).
    pub fn new(
        dataset: Arc<dyn Dataset<Sample>>,
        indices: Vec<usize>,
        batch_size: usize,
        order: Order,
        first_epoch: usize,
        device: Device,
    ) -> Self {
        Self {
            dataset,
            indices,
            batch_size: batch_size.max(1),
            order,
            border: None,
            next_epoch: Arc::new(AtomicUsize::new(first_epoch)),
            device,
            devices: 1,
            shard: None,
        }
    }

    /// A loader whose slices ([`DataLoader::slice`], as burn-train's
    /// multi-device training takes them) split each batch between
    /// `devices` devices, rather than the samples: `batch_size` stays the
    /// batch of one optimizer step.
    pub fn with_devices(mut self, devices: usize) -> Self {
        self.devices = devices.max(1);
        self
    }

    /// A copy with a fresh epoch counter at this loader's next epoch, on
    /// `device`, serving `shard`.
    fn copy(&self, device: &Device, shard: Option<usize>) -> Self {
        Self {
            dataset: self.dataset.clone(),
            indices: self.indices.clone(),
            batch_size: self.batch_size,
            order: self.order,
            border: self.border,
            next_epoch: self.counter_copy(),
            device: device.clone(),
            devices: self.devices,
            shard,
        }
    }

    /// The positions of a batch of `size` that this loader serves.
    fn part(&self, size: usize) -> std::ops::Range<usize> {
        match self.shard {
            Some(k) => k * size / self.devices..(k + 1) * size / self.devices,
            None => 0..size,
        }
    }

    /// Samples in an epoch of the whole loader (all shards).
    fn epoch_len(&self) -> usize {
        match self.order {
            Order::Shuffled {
                epoch_samples: Some(n),
                ..
            } if !self.indices.is_empty() => n,
            _ => self.indices.len(),
        }
    }

    /// Batches that carry each sample's loss weight map (the U-Net paper's),
    /// computed from its instance labels after augmentation.
    pub fn with_border_weight(mut self, border: Option<BorderWeight>) -> Self {
        self.border = border;
        self
    }

    /// A fresh epoch counter at this loader's next epoch: each copy (one per
    /// device, or per slice of a multi-device run) counts its own epochs.
    fn counter_copy(&self) -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(self.next_epoch.load(Ordering::SeqCst)))
    }

    /// The sample indices of `epoch`, in the order they are served, with
    /// the augmentation seed of each: made as they are asked for, so an
    /// epoch of any length takes no memory beyond one pass of indices.
    fn plan(&self, epoch: usize) -> Plan {
        let (len, shuffle) = match self.order {
            Order::Sequential => (self.indices.len(), None),
            Order::Shuffled {
                seed,
                augmentation,
                epoch_samples,
            } => {
                let epoch_seed = mix(seed, epoch as u64);
                let rng = StdRng::seed_from_u64(epoch_seed);
                let len = epoch_samples.unwrap_or(self.indices.len());
                (len, Some((rng, augmentation.is_on().then_some(epoch_seed))))
            }
        };
        let len = if self.indices.is_empty() { 0 } else { len };
        Plan {
            indices: self.indices.clone(),
            len,
            served: 0,
            pass: Vec::new(),
            shuffle,
        }
    }
}

/// An epoch's samples, one pass of the indices at a time: in order, or
/// each pass reshuffled by the epoch's random stream.
struct Plan {
    indices: Vec<usize>,
    len: usize,
    served: usize,
    /// The rest of the current pass, next sample last.
    pass: Vec<usize>,
    /// The epoch's random stream, and the seed of augmentation seeds.
    shuffle: Option<(StdRng, Option<u64>)>,
}

impl Iterator for Plan {
    /// A sample index and the seed of its augmentation, if any.
    type Item = (usize, Option<u64>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.served >= self.len {
            return None;
        }
        if self.pass.is_empty() {
            self.pass = self.indices.clone();
            if let Some((rng, _)) = &mut self.shuffle {
                self.pass.shuffle(rng);
            }
            self.pass.reverse();
        }
        let index = self.pass.pop()?;
        let position = self.served as u64;
        self.served += 1;
        let augment = self.shuffle.as_ref().and_then(|(_, seed)| *seed);
        Some((index, augment.map(|seed| mix(seed, position))))
    }
}

impl DataLoader<SegmentationBatch> for EpochLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<SegmentationBatch> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        if let Order::Shuffled { seed, .. } = self.order {
            // Dropout draws from the device's stream: make it a function of the epoch too.
            self.device.seed(mix(seed ^ 0x5EED, epoch as u64));
        }
        Box::new(EpochIter {
            loader: self,
            plan: self.plan(epoch),
            served: 0,
            total: self.num_items(),
        })
    }

    fn num_items(&self) -> usize {
        let len = self.epoch_len();
        let full = len / self.batch_size;
        full * self.part(self.batch_size).len() + self.part(len % self.batch_size).len()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<SegmentationBatch>> {
        Arc::new(self.copy(device, self.shard))
    }

    /// Shard `k` of the loader's devices, where `start` is where
    /// burn-train's `split_dataloader` starts slice `k`: `k` times
    /// `num_items / devices` (the run checks that an epoch has at least one
    /// sample per device). `end` is not needed: every shard walks the
    /// whole epoch's plan and serves its part of each batch.
    fn slice(&self, start: usize, _end: usize) -> Arc<dyn DataLoader<SegmentationBatch>> {
        let step = (self.num_items() / self.devices).max(1);
        let shard = (start / step).min(self.devices - 1);
        Arc::new(self.copy(&self.device, Some(shard)))
    }
}

struct EpochIter<'a> {
    loader: &'a EpochLoader,
    plan: Plan,
    /// Samples this loader (or shard) has served, of `total` in the epoch.
    served: usize,
    total: usize,
}

impl Iterator for EpochIter<'_> {
    type Item = Result<SegmentationBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch: Vec<(usize, Option<u64>)> =
            self.plan.by_ref().take(self.loader.batch_size).collect();
        let whole = batch.len();
        let part = self.loader.part(whole);
        let planned = &batch[part];
        // Only the last, short batch can leave a shard nothing.
        if planned.is_empty() {
            return None;
        }
        self.served += planned.len();
        let share = planned.len() as f32 / whole as f32;
        let augmentation = match self.loader.order {
            Order::Shuffled { augmentation, .. } => augmentation,
            Order::Sequential => Augmentation::default(),
        };
        let samples: Result<Vec<Sample>, DatasetError> = planned
            .iter()
            .map(|&(index, augment_seed)| {
                let sample = self.loader.dataset.get(index)?;
                match augment_seed {
                    Some(seed) => augmentation
                        .apply(&sample, &mut StdRng::seed_from_u64(seed))
                        .map_err(DatasetError::new),
                    None => Ok(sample),
                }
            })
            .collect();
        let loader = self.loader;
        Some(samples.and_then(|samples| {
            let batch =
                SegmentationBatch::weighted(&samples, loader.border.as_ref(), &loader.device);
            batch
                .map(|batch| SegmentationBatch { share, ..batch })
                .map_err(DatasetError::new)
        }))
    }
}

impl DataLoaderIterator<SegmentationBatch> for EpochIter<'_> {
    fn progress(&self) -> Progress {
        Progress::new(self.served, self.total, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SyntheticDataset;

    fn loader(order: Order, first_epoch: usize) -> EpochLoader {
        let data = SyntheticDataset::new(10, 8, 2, 1, 7).unwrap();
        EpochLoader::new(
            Arc::new(data),
            (0..10).collect(),
            4,
            order,
            first_epoch,
            Device::flex(),
        )
    }

    fn epoch_masks(loader: &EpochLoader) -> Vec<i64> {
        loader
            .iter()
            .flat_map(|batch| batch.unwrap().masks.try_into_vec_as::<i64>().unwrap())
            .collect()
    }

    #[test]
    fn an_epoch_depends_only_on_seed_and_epoch_number() {
        let shuffled = Order::Shuffled {
            seed: 3,
            augmentation: Augmentation::flips(),
            epoch_samples: None,
        };
        let fresh = loader(shuffled, 1);
        let (first, second) = (epoch_masks(&fresh), epoch_masks(&fresh));
        assert_ne!(first, second, "each epoch is a new order and augmentation");
        // A loader resumed at epoch 2 serves what the fresh one served second.
        assert_eq!(epoch_masks(&loader(shuffled, 2)), second);
    }

    #[test]
    fn batches_cover_every_sample_once() {
        let sequential = loader(Order::Sequential, 1);
        let mut iter = sequential.iter();
        let sizes: Vec<usize> = iter.by_ref().map(|b| b.unwrap().images.dims()[0]).collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(iter.progress().items_processed, 10);
        assert_eq!(epoch_masks(&sequential), epoch_masks(&sequential));
    }

    #[test]
    fn longer_epochs_chain_whole_passes() {
        let long = loader(
            Order::Shuffled {
                seed: 1,
                augmentation: Augmentation::default(),
                epoch_samples: Some(25),
            },
            1,
        );
        let plan: Vec<(usize, Option<u64>)> = long.plan(1).collect();
        assert_eq!(long.num_items(), 25);
        assert_eq!(plan.len(), 25);
        for pass in plan.chunks(10).filter(|pass| pass.len() == 10) {
            let mut indices: Vec<usize> = pass.iter().map(|&(i, _)| i).collect();
            indices.sort();
            assert_eq!(
                indices,
                (0..10).collect::<Vec<_>>(),
                "each pass is a permutation"
            );
        }
    }

    /// Each batch of an epoch as (share, images, masks).
    type Served = Vec<(f32, Vec<f32>, Vec<i64>)>;

    fn served(loader: &dyn DataLoader<SegmentationBatch>) -> Served {
        loader
            .iter()
            .map(|batch| {
                let batch = batch.unwrap();
                let images = batch.images.into_data().try_to_vec::<f32>().unwrap();
                let masks = batch.masks.try_into_vec_as::<i64>().unwrap();
                (batch.share, images, masks)
            })
            .collect()
    }

    /// Splits a loader as burn-train's multi-device training does, and
    /// checks each step's shards, put together in device order, against
    /// the one-device batch; returns the shards' batch sizes per step.
    fn check_shards(order: Order, devices: usize) -> Vec<Vec<usize>> {
        use burn::data::dataloader::split::split_dataloader;
        let whole = served(&loader(order, 1));
        let shards = split_dataloader(
            Arc::new(loader(order, 1).with_devices(devices)),
            &vec![Device::flex(); devices],
        );
        let total: usize = shards.iter().map(|shard| shard.num_items()).sum();
        assert_eq!(total, loader(order, 1).num_items());
        let parts: Vec<Served> = shards.iter().map(|shard| served(shard.as_ref())).collect();
        let mut sizes = Vec::new();
        for (step, (_, images, masks)) in whole.iter().enumerate() {
            let batch = masks.len() / 64;
            let (mut joined_images, mut joined_masks, mut step_sizes) = (vec![], vec![], vec![]);
            for part in parts.iter().filter_map(|part| part.get(step)) {
                let size = part.2.len() / 64;
                assert_eq!(
                    part.0,
                    size as f32 / batch as f32,
                    "the share of step {step}"
                );
                joined_images.extend_from_slice(&part.1);
                joined_masks.extend_from_slice(&part.2);
                step_sizes.push(size);
            }
            assert_eq!(&joined_images, images, "images of step {step}");
            assert_eq!(&joined_masks, masks, "masks of step {step}");
            sizes.push(step_sizes);
        }
        let steps = parts.iter().map(Vec::len).max().unwrap();
        assert_eq!(steps, whole.len(), "no shard serves more steps");
        sizes
    }

    #[test]
    fn shards_of_each_batch_are_the_one_device_batch() {
        let shuffled = Order::Shuffled {
            seed: 5,
            augmentation: Augmentation::flips(),
            epoch_samples: None,
        };
        // Ten samples in batches of 4: 4, 4, 2.
        assert_eq!(check_shards(shuffled, 2), [[2, 2], [2, 2], [1, 1]]);
        assert_eq!(check_shards(Order::Sequential, 2), [[2, 2], [2, 2], [1, 1]]);
        assert_eq!(
            check_shards(shuffled, 4),
            [vec![1, 1, 1, 1], vec![1, 1, 1, 1], vec![1, 1]]
        );
    }

    #[test]
    fn shards_of_longer_epochs_serve_every_sample() {
        // 18 samples over 10 indices (slicing the indices, as Burn's own
        // loaders do, panicked here), and 17, whose last batch of one
        // sample goes to the second device alone.
        for (samples, last) in [(18, vec![1, 1]), (17, vec![1])] {
            let order = Order::Shuffled {
                seed: 9,
                augmentation: Augmentation::flips(),
                epoch_samples: Some(samples),
            };
            let sizes = check_shards(order, 2);
            assert_eq!(sizes.len(), 5);
            assert!(sizes[..4].iter().all(|step| step == &[2, 2]), "{sizes:?}");
            assert_eq!(sizes[4], last);
        }
    }

    #[test]
    fn a_huge_epoch_is_planned_as_it_is_served() {
        // A billion samples per epoch: the plan holds one pass of the ten
        // indices, not a billion entries (which would need 16 GB).
        let huge = loader(
            Order::Shuffled {
                seed: 2,
                augmentation: Augmentation::default(),
                epoch_samples: Some(1_000_000_000),
            },
            1,
        );
        assert_eq!(huge.num_items(), 1_000_000_000);
        let mut plan = huge.plan(1);
        let first: Vec<usize> = plan.by_ref().take(25).map(|(i, _)| i).collect();
        assert_eq!(first.len(), 25);
        assert!(plan.pass.capacity() <= 10, "one pass at a time");
        assert_eq!(plan.len, 1_000_000_000);
    }
}
