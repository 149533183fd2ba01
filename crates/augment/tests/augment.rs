//! Exact and bounded checks of the augmentations with known parameters.

use augment::{AugmentConfig, Augmenter, MemoryFormat, Params, apply, apply_as, rescale};
use tch::{Device, Kind, Tensor};

/// uint8 [n, 3, h, w] whose value encodes (image, channel, row, col), all distinct per plane.
fn pattern(n: i64, h: i64, w: i64) -> Tensor {
    let row = Tensor::arange(h, (Kind::Int64, Device::Cpu)).view([1, 1, h, 1]);
    let col = Tensor::arange(w, (Kind::Int64, Device::Cpu)).view([1, 1, 1, w]);
    let ch = Tensor::arange(3, (Kind::Int64, Device::Cpu)).view([1, 3, 1, 1]);
    let img = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([n, 1, 1, 1]);
    (row * 13 + col * 7 + ch * 60 + img * 5)
        .remainder(256)
        .expand([n, 3, h, w], false)
        .to_kind(Kind::Uint8)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn f(x: &Tensor, idx: &[i64]) -> f64 {
    x.double_value(idx)
}

#[test]
fn zero_parameters_are_the_identity() {
    let x = pattern(3, 20, 24);
    let out = apply(&x, &Params::identity(3), Device::Cpu).unwrap();
    assert_eq!(out.kind(), Kind::Float);
    assert!(max_diff(&out, &rescale(&x, Device::Cpu)) < 1e-6);
    assert!(
        (f(&out, &[1, 2, 5, 7]) - f(&x.to_kind(Kind::Float), &[1, 2, 5, 7]) / 255.0).abs() < 1e-6
    );
}

#[test]
fn a_flip_mirrors_exactly() {
    let x = pattern(2, 8, 10);
    let mut p = Params::identity(2);
    p.flip[1] = true;
    let out = apply(&x, &p, Device::Cpu).unwrap();
    let want = rescale(&x.get(1).flip([2]), Device::Cpu);
    assert!(max_diff(&out.get(1), &want) < 1e-5);
    assert!(
        max_diff(&out.get(0), &rescale(&x.get(0), Device::Cpu)) < 1e-6,
        "image 0 untouched"
    );
}

#[test]
fn whole_pixel_translations_move_the_pattern() {
    let x = pattern(1, 16, 16);
    let mut p = Params::identity(1);
    p.translate[0] = [3.0, -2.0]; // right by 3, up by 2
    let out = apply(&x, &p, Device::Cpu).unwrap();
    let src = rescale(&x, Device::Cpu);
    for (r, c) in [(0, 3), (5, 9), (13, 15), (7, 4)] {
        let want = f(&src, &[0, 1, r + 2, c - 3]);
        assert!((f(&out, &[0, 1, r, c]) - want).abs() < 1e-5, "({r},{c})");
    }
    // Reflection fill (d c b a | a b c d): output column 2 reads input column -1 -> 0,
    // column 0 reads -3 -> 2.
    for (c, from) in [(2, 0), (1, 1), (0, 2)] {
        assert!(
            (f(&out, &[0, 0, 4, c]) - f(&src, &[0, 0, 6, from])).abs() < 1e-5,
            "col {c}"
        );
    }
    // Bottom rows read beyond the last row, reflected: row 15 reads 17 -> 14, row 14 reads 16 -> 15.
    assert!((f(&out, &[0, 2, 15, 8]) - f(&src, &[0, 2, 14, 5])).abs() < 1e-5);
    assert!((f(&out, &[0, 2, 14, 8]) - f(&src, &[0, 2, 15, 5])).abs() < 1e-5);
}

#[test]
fn a_half_pixel_shift_averages_neighbours() {
    let x = pattern(1, 8, 8);
    let mut p = Params::identity(1);
    p.translate[0] = [0.5, 0.0];
    let out = apply(&x, &p, Device::Cpu).unwrap();
    let src = rescale(&x, Device::Cpu);
    let want = (f(&src, &[0, 0, 3, 4]) + f(&src, &[0, 0, 3, 3])) / 2.0;
    assert!((f(&out, &[0, 0, 3, 4]) - want).abs() < 1e-5);
}

#[test]
fn zoom_keeps_the_centre_and_maps_the_corners() {
    let x = pattern(1, 16, 16);
    let mut p = Params::identity(1);
    p.zoom[0] = [0.5, 0.5]; // show the central half
    let out = apply(&x, &p, Device::Cpu).unwrap();
    let src = rescale(&x, Device::Cpu);
    // Centred coordinates halve: output pixel centre c (index i) reads i' = (i - 7.5) / 2 + 7.5.
    // Output corner pixel 0 reads 3.75 (between input 3 and 4), pixel 15 reads 11.25.
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let row = |r: i64, c: i64| f(&src, &[0, 0, r, c]);
    let at_00 = lerp(
        lerp(row(3, 3), row(3, 4), 0.75),
        lerp(row(4, 3), row(4, 4), 0.75),
        0.75,
    );
    assert!((f(&out, &[0, 0, 0, 0]) - at_00).abs() < 1e-5);
    let at_ff = lerp(
        lerp(row(11, 11), row(11, 12), 0.25),
        lerp(row(12, 11), row(12, 12), 0.25),
        0.25,
    );
    assert!((f(&out, &[0, 0, 15, 15]) - at_ff).abs() < 1e-5);
    // The centre (between pixels 7 and 8) stays: output 7.5 reads 7.5, so the 2x2 centre
    // average is preserved.
    let centre_in = (row(7, 7) + row(7, 8) + row(8, 7) + row(8, 8)) / 4.0;
    let o = |r: i64, c: i64| f(&out, &[0, 0, r, c]);
    let centre_out = (o(7, 7) + o(7, 8) + o(8, 7) + o(8, 8)) / 4.0;
    assert!((centre_in - centre_out).abs() < 1e-5);
    p.zoom[0] = [1.0, 1.0];
    assert!(
        max_diff(&apply(&x, &p, Device::Cpu).unwrap(), &src) < 1e-6,
        "zoom 1 is the identity"
    );
}

#[test]
fn the_color_affine_matches_hand_computation_and_clamps() {
    // One pixel colour (R, G, B) = (51, 102, 153) / 255 = (0.2, 0.4, 0.6).
    let mut x = Tensor::zeros([1, 3, 2, 2], (Kind::Uint8, Device::Cpu));
    for (c, v) in [51i64, 102, 153].iter().enumerate() {
        let _ = x.get(0).get(c as i64).fill_(*v);
    }
    let mut p = Params::identity(1);
    p.brightness[0] = 0.5;
    p.jitter[0] = [[0.1, 0.0, -0.2], [0.0, 0.2, 0.0], [0.05, 0.0, 0.1]];
    let out = apply(&x, &p, Device::Cpu).unwrap();
    // out_j = sum_i x_i M_ij with M = 1.5 I + J:
    // R = 0.2*1.6 + 0.4*0.0 + 0.6*0.05 = 0.35
    // G = 0.2*0.0 + 0.4*1.7 + 0.6*0.0  = 0.68
    // B = 0.2*-0.2 + 0.4*0.0 + 0.6*1.6 = 0.92
    for (c, want) in [0.35, 0.68, 0.92].iter().enumerate() {
        assert!(
            (f(&out, &[0, c as i64, 1, 0]) - want).abs() < 1e-5,
            "channel {c}"
        );
    }
    p.brightness[0] = 0.9;
    p.jitter[0] = [[0.0; 3]; 3];
    let _ = x.fill_(200);
    let out = apply(&x, &p, Device::Cpu).unwrap();
    assert_eq!(f(&out, &[0, 0, 0, 0]), 1.0, "1.9 * 200/255 clamps to 1");
    p.brightness[0] = 0.0;
    p.jitter[0] = [[-1.0; 3]; 3];
    assert_eq!(
        f(&apply(&x, &p, Device::Cpu).unwrap(), &[0, 2, 1, 1]),
        0.0,
        "negative clamps to 0"
    );
}

#[test]
fn outputs_stay_in_the_unit_interval() {
    let x = Tensor::randint(256, [16, 3, 24, 24], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
    let mut strong = Augmenter::new(AugmentConfig::contrastive(), 1, Device::Cpu).unwrap();
    let out = strong.augment(&x).unwrap();
    assert!(out.min().double_value(&[]) >= 0.0 && out.max().double_value(&[]) <= 1.0);
    assert_eq!(strong.inference(&x).size(), [16, 3, 24, 24]);
    assert!(max_diff(&strong.inference(&x), &rescale(&x, Device::Cpu)) == 0.0);
}

#[test]
fn drawn_parameters_cover_their_ranges() {
    let cfg = AugmentConfig::contrastive(); // zoom_factor 0.5: shift up to 0.25 * side
    assert!((cfg.zoom_factor() - 0.5).abs() < 1e-12);
    assert!((AugmentConfig::classification().zoom_factor() - (1.0 - 0.75f64.sqrt())).abs() < 1e-12);
    let mut a = Augmenter::new(cfg, 9, Device::Cpu).unwrap();
    let p = a.sample(20_000, 96, 64).unwrap();
    let stats = |v: Vec<f32>| {
        let (min, max) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (
            f64::from(min),
            f64::from(max),
            v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64,
        )
    };
    let check = |name: &str, (min, max, mean): (f64, f64, f64), lo: f64, hi: f64| {
        let span = hi - lo;
        assert!(
            min >= lo && min < lo + 0.01 * span,
            "{name}: min {min} vs {lo}"
        );
        assert!(
            max <= hi && max > hi - 0.01 * span,
            "{name}: max {max} vs {hi}"
        );
        assert!(
            (mean - (lo + hi) / 2.0).abs() < 0.02 * span,
            "{name}: mean {mean}"
        );
    };
    check(
        "translate x",
        stats(p.translate.iter().map(|t| t[0]).collect()),
        -16.0,
        16.0,
    );
    check(
        "translate y",
        stats(p.translate.iter().map(|t| t[1]).collect()),
        -24.0,
        24.0,
    );
    check(
        "zoom x",
        stats(p.zoom.iter().map(|z| z[0]).collect()),
        0.5,
        1.0,
    );
    check(
        "zoom y",
        stats(p.zoom.iter().map(|z| z[1]).collect()),
        0.5,
        1.0,
    );
    check("brightness", stats(p.brightness.clone()), -0.6, 0.6);
    check(
        "jitter",
        stats(
            p.jitter
                .iter()
                .flat_map(|m| m.iter().flatten().copied())
                .collect(),
        ),
        -0.2,
        0.2,
    );
    let flips = p.flip.iter().filter(|&&f| f).count() as f64 / 20_000.0;
    assert!((flips - 0.5).abs() < 0.02, "flip rate {flips}");
    let independent = p.zoom.iter().filter(|z| (z[0] - z[1]).abs() > 0.05).count();
    assert!(independent > 15_000, "zoom axes are drawn independently");
}

#[test]
fn seeds_make_runs_reproducible() {
    let x = pattern(4, 32, 32);
    let run = |seed| {
        Augmenter::new(AugmentConfig::contrastive(), seed, Device::Cpu)
            .unwrap()
            .augment(&x)
            .unwrap()
    };
    assert!(run(5).equal(&run(5)), "same seed, bit-identical");
    assert!(max_diff(&run(5), &run(6)) > 0.1, "another seed differs");
}

#[test]
fn a_malformed_batch_is_an_error_not_a_panic() {
    let mut a = Augmenter::new(AugmentConfig::contrastive(), 0, Device::Cpu).unwrap();
    for shape in [vec![2, 1, 8, 8], vec![2, 3, 8], vec![3, 8, 8, 3, 1]] {
        let x = Tensor::zeros(shape.as_slice(), (Kind::Uint8, Device::Cpu));
        assert_eq!(
            a.augment(&x).unwrap_err().to_string(),
            format!("images must be [N, 3, H, W], got {shape:?}")
        );
    }
    let x = pattern(4, 8, 8);
    assert_eq!(
        apply(&x, &Params::identity(3), Device::Cpu)
            .unwrap_err()
            .to_string(),
        "the parameters are for 3 images, the batch has 4"
    );
}

#[test]
fn invalid_settings_name_the_field() {
    let bad = AugmentConfig {
        min_area: 0.0,
        ..AugmentConfig::contrastive()
    };
    assert_eq!(
        Augmenter::new(bad, 0, Device::Cpu).unwrap_err().to_string(),
        "min_area = 0 is outside (0, 1]"
    );
    let bad = AugmentConfig {
        brightness: 1.5,
        ..AugmentConfig::contrastive()
    };
    assert_eq!(
        Augmenter::new(bad, 0, Device::Cpu).unwrap_err().field(),
        Some("brightness")
    );
    let bad = AugmentConfig {
        jitter: -0.1,
        ..AugmentConfig::contrastive()
    };
    assert_eq!(
        Augmenter::new(bad, 0, Device::Cpu).unwrap_err().field(),
        Some("jitter")
    );
}

#[test]
fn cpu_and_cuda_agree_for_the_same_parameters() {
    if !test_support::cuda_for_tests() {
        return;
    }
    let x = pattern(8, 96, 96);
    let p = Augmenter::new(AugmentConfig::contrastive(), 3, Device::Cpu)
        .unwrap()
        .sample(8, 96, 96)
        .unwrap();
    let cpu = apply(&x, &p, Device::Cpu).unwrap();
    let gpu = apply(&x, &p, Device::Cuda(0))
        .unwrap()
        .to_device(Device::Cpu);
    assert!(
        max_diff(&cpu, &gpu) < 1e-4,
        "max diff {}",
        max_diff(&cpu, &gpu)
    );
}

#[test]
fn one_augmentation_of_the_doubled_batch_equals_two_calls() {
    let x = pattern(5, 32, 32);
    let mut once = Augmenter::new(AugmentConfig::contrastive(), 11, Device::Cpu).unwrap();
    let mut twice = Augmenter::new(AugmentConfig::contrastive(), 11, Device::Cpu).unwrap();
    let both = once.augment(&x.repeat([2, 1, 1, 1])).unwrap();
    let (a, b) = (twice.augment(&x).unwrap(), twice.augment(&x).unwrap());
    // Parameters are drawn image by image from one stream, so the doubled batch draws the first
    // view's parameters, then the second's, exactly as two calls do.
    assert!(both.narrow(0, 0, 5).equal(&a), "first view");
    assert!(both.narrow(0, 5, 5).equal(&b), "second view");
    assert!(max_diff(&a, &b) > 0.05, "the two views differ");
}

#[test]
fn channels_last_output_has_the_same_values_in_nhwc_memory() {
    let x = pattern(4, 24, 20);
    let p = Augmenter::new(AugmentConfig::contrastive(), 4, Device::Cpu)
        .unwrap()
        .sample(4, 24, 20)
        .unwrap();
    let nchw = apply_as(&x, &p, Device::Cpu, MemoryFormat::Contiguous).unwrap();
    let nhwc = apply_as(&x, &p, Device::Cpu, MemoryFormat::ChannelsLast).unwrap();
    assert_eq!(nhwc.size(), [4, 3, 24, 20]);
    assert_eq!(
        nhwc.stride(),
        [24 * 20 * 3, 1, 20 * 3, 3],
        "written channels-last"
    );
    assert_eq!(MemoryFormat::of(&nchw), MemoryFormat::Contiguous);
    assert!(max_diff(&nchw, &nhwc) < 1e-6);
    let a = Augmenter::new(AugmentConfig::contrastive(), 4, Device::Cpu)
        .unwrap()
        .with_format(MemoryFormat::ChannelsLast);
    assert_eq!(
        MemoryFormat::of(&a.inference(&x)),
        MemoryFormat::ChannelsLast
    );
    assert!(max_diff(&a.inference(&x), &rescale(&x, Device::Cpu)) == 0.0);
}

#[test]
fn folding_the_rescale_into_the_colour_matrix_matches_rescaling_first() {
    // Reference in f64: rescale, resample (identity geometry here), then multiply by M.
    let x = pattern(2, 6, 6);
    let mut p = Params::identity(2);
    p.brightness = vec![0.3, -0.2];
    p.jitter[0] = [[0.1, -0.05, 0.0], [0.02, 0.0, 0.1], [-0.1, 0.0, 0.05]];
    p.jitter[1] = [[0.0, 0.1, 0.1], [0.0, -0.1, 0.0], [0.05, 0.05, 0.0]];
    let out = apply(&x, &p, Device::Cpu).unwrap();
    let xf = x.to_kind(Kind::Double) / 255.0;
    for i in 0..2 {
        for (r, c) in [(0, 0), (3, 4), (5, 5)] {
            for j in 0..3 {
                let m = |k: usize| {
                    let diag = if k == j {
                        1.0 + f64::from(p.brightness[i])
                    } else {
                        0.0
                    };
                    diag + f64::from(p.jitter[i][k][j])
                };
                let want: f64 = (0..3)
                    .map(|k| xf.double_value(&[i as i64, k as i64, r, c]) * m(k))
                    .sum::<f64>()
                    .clamp(0.0, 1.0);
                let got = out.double_value(&[i as i64, j as i64, r, c]);
                assert!((got - want).abs() < 1e-6, "image {i} ({r},{c}) channel {j}");
            }
        }
    }
}

#[test]
fn a_saved_stream_position_replays_the_same_draws() {
    let mut a = Augmenter::new(AugmentConfig::contrastive(), 9, Device::Cpu).unwrap();
    let _ = a.sample(7, 32, 32);
    let at = a.stream_position();
    assert_ne!(at, 0, "drawing moves the stream");
    let next = a.sample(5, 32, 32);
    let mut b = Augmenter::new(AugmentConfig::contrastive(), 9, Device::Cpu).unwrap();
    assert_ne!(
        b.sample(5, 32, 32),
        next,
        "the start of the stream draws something else"
    );
    b.seek(at);
    assert_eq!(b.sample(5, 32, 32), next);
    assert_eq!(a.stream_position(), b.stream_position());
}

/// Two ranks, each with its own augmenter of the same seed, augmenting their shards of each step's
/// batch with `augment_rows`, get exactly the rows one augmenter gets for the whole batch, step
/// after step; rows in any order work, and a bad row or count is an error.
#[test]
fn shards_augmented_by_rows_equal_the_whole_batch() {
    let presets = [
        augment::Preset::Keras(AugmentConfig::contrastive()),
        augment::Preset::Simclr(augment::SimclrConfig::default()),
    ];
    for preset in presets {
        let whole = || Augmenter::new(preset, 7, Device::Cpu).unwrap();
        let (mut one, mut rank0, mut rank1, mut picky) = (whole(), whole(), whole(), whole());
        let rows = |r: std::ops::Range<usize>| r.collect::<Vec<_>>();
        for step in 0..2 {
            let x = pattern(6, 16, 16) + step;
            let all = one.augment(&x).unwrap();
            let a = rank0
                .augment_rows(&x.narrow(0, 0, 4), 6, &rows(0..4))
                .unwrap();
            let b = rank1
                .augment_rows(&x.narrow(0, 4, 2), 6, &rows(4..6))
                .unwrap();
            assert_eq!(
                max_diff(&Tensor::cat(&[a, b], 0), &all),
                0.0,
                "{preset:?} step {step}"
            );
            let shuffled = Tensor::stack(&[x.get(5), x.get(1)], 0);
            let c = picky.augment_rows(&shuffled, 6, &[5, 1]).unwrap();
            let expected = Tensor::stack(&[all.get(5), all.get(1)], 0);
            assert_eq!(max_diff(&c, &expected), 0.0, "{preset:?} step {step}");
        }
        let x = pattern(2, 16, 16);
        let err = one.augment_rows(&x, 6, &[0, 6]).unwrap_err().to_string();
        assert_eq!(err, "row 6 is outside the batch of 6 images");
        let err = one.augment_rows(&x, 6, &[0]).unwrap_err().to_string();
        assert_eq!(err, "the parameters are for 1 images, the batch has 2");
    }
}
