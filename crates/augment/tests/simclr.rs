//! The SimCLR preset's operations against references written here in f64, pixel by pixel.

// The references index pixels by (channel, row, column) as the formulas do.
#![allow(clippy::needless_range_loop)]

use augment::simclr::{
    ColorOp, Jitter, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation,
    gaussian_blur, grayscale,
};
use augment::{
    AugmentError, Augmenter, MemoryFormat, Preset, SimclrConfig, SimclrParams, apply_simclr,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

/// `[n, 3, h, w]` float64 values of `t`, nested.
fn pixels(t: &Tensor) -> Vec<Vec<Vec<Vec<f64>>>> {
    let (n, c, h, w) = t.size4().unwrap();
    let flat = Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().flatten(0, -1)).unwrap();
    let at = |i: i64, ch: i64, y: i64, x: i64| flat[(((i * c + ch) * h + y) * w + x) as usize];
    (0..n)
        .map(|i| {
            (0..c)
                .map(|ch| {
                    (0..h)
                        .map(|y| (0..w).map(|x| at(i, ch, y, x)).collect())
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// Random colours in [0, 1], with a grey pixel and pure primaries among them.
fn colours(n: i64, h: i64, w: i64) -> Tensor {
    tch::manual_seed(7);
    let x = Tensor::rand([n, 3, h, w], (Kind::Float, CPU));
    let _ = x.get(0).narrow(1, 0, 1).narrow(2, 0, 1).fill_(0.5); // grey
    for (k, c) in [(1, 0), (2, 1), (3, 2)] {
        let mut px = x.get(0).narrow(2, k, 1).narrow(1, 0, 1);
        let _ = px.fill_(0.0);
        let _ = px.get(c).fill_(1.0);
    }
    x
}

fn gray_ref(p: [f64; 3]) -> f64 {
    0.2989 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// Applies `f` to every RGB pixel of image `i` of `px` (with the image's index and pixels).
fn per_pixel_ref(
    px: &[Vec<Vec<Vec<f64>>>],
    f: impl Fn(usize, [f64; 3]) -> [f64; 3],
) -> Vec<Vec<Vec<Vec<f64>>>> {
    let mut out = px.to_vec();
    for (i, img) in px.iter().enumerate() {
        for y in 0..img[0].len() {
            for x in 0..img[0][0].len() {
                let v = f(i, [img[0][y][x], img[1][y][x], img[2][y][x]]);
                for c in 0..3 {
                    out[i][c][y][x] = v[c];
                }
            }
        }
    }
    out
}

fn assert_close(got: &Tensor, want: &[Vec<Vec<Vec<f64>>>], tol: f64, what: &str) {
    let got = pixels(got);
    let mut worst: f64 = 0.0;
    for (a, b) in got
        .iter()
        .flatten()
        .flatten()
        .flatten()
        .zip(want.iter().flatten().flatten().flatten())
    {
        worst = worst.max((a - b).abs());
    }
    assert!(worst < tol, "{what}: max difference {worst}");
}

#[test]
fn brightness_contrast_saturation_and_grayscale_match_torchvisions_formulas() {
    let x = colours(3, 5, 4);
    let px = pixels(&x);
    let f = [0.4f32, 1.0, 1.7];
    let clamp = |v: f64| v.clamp(0.0, 1.0);
    let want = per_pixel_ref(&px, |i, p| p.map(|v| clamp(v * f[i] as f64)));
    assert_close(&adjust_brightness(&x, &f), &want, 1e-6, "brightness");
    // Contrast blends with the image's mean grey level.
    let means: Vec<f64> = px
        .iter()
        .map(|img| {
            let (h, w) = (img[0].len(), img[0][0].len());
            let mut s = 0.0;
            for y in 0..h {
                for x in 0..w {
                    s += gray_ref([img[0][y][x], img[1][y][x], img[2][y][x]]);
                }
            }
            s / (h * w) as f64
        })
        .collect();
    let want = per_pixel_ref(&px, |i, p| {
        let f = f[i] as f64;
        p.map(|v| clamp(f * v + (1.0 - f) * means[i]))
    });
    assert_close(&adjust_contrast(&x, &f), &want, 1e-6, "contrast");
    let want = per_pixel_ref(&px, |i, p| {
        let (f, g) = (f[i] as f64, gray_ref(p));
        p.map(|v| clamp(f * v + (1.0 - f) * g))
    });
    assert_close(&adjust_saturation(&x, &f), &want, 1e-6, "saturation");
    let g = grayscale(&x);
    assert_eq!(g.size(), [3, 1, 5, 4]);
    let want = per_pixel_ref(&px, |_, p| [gray_ref(p); 3]);
    assert_close(&g.expand([-1, 3, -1, -1], false), &want, 1e-6, "grayscale");
}

/// Hue rotation through HSV, written from the textbook definition (not torchvision's tensor
/// code): hue in turns, saturation `(max - min) / max`, value `max`.
fn hue_ref(p: [f64; 3], shift: f64) -> [f64; 3] {
    let [r, g, b] = p;
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let (v, d) = (max, max - min);
    let s = if max > 0.0 { d / max } else { 0.0 };
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let h = (h + shift).rem_euclid(1.0) * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

#[test]
fn hue_shifts_match_a_textbook_hsv_rotation() {
    let x = colours(4, 6, 5);
    let px = pixels(&x);
    let shifts = [0.0f32, 0.13, -0.37, 0.5];
    let want = per_pixel_ref(&px, |i, p| hue_ref(p, shifts[i] as f64));
    assert_close(&adjust_hue(&x, &shifts), &want, 1e-5, "hue");
    // A third of a turn maps pure red to pure green, and grey stays grey.
    let got = pixels(&adjust_hue(&x.narrow(0, 0, 1), &[1.0 / 3.0]));
    let red_to = [got[0][0][0][1], got[0][1][0][1], got[0][2][0][1]];
    assert!(
        (red_to[0]).abs() < 1e-5 && (red_to[1] - 1.0).abs() < 1e-5 && red_to[2].abs() < 1e-5,
        "{red_to:?}"
    );
    assert!((0..3).all(|c| (got[0][c][0][0] - 0.5).abs() < 1e-6));
    // The reference itself is not the identity (the comparison above says something).
    assert!((hue_ref([0.9, 0.2, 0.1], 0.5)[0] - 0.9).abs() > 0.5);
}

/// Gaussian blur with reflected borders (`d c b | a b c d | c b a`) in f64.
fn blur_ref(img: &[Vec<Vec<f64>>], sigma: f64, k: usize) -> Vec<Vec<Vec<f64>>> {
    let half = (k / 2) as i64;
    let weights: Vec<f64> = (-half..=half)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let (h, w) = (img[0].len() as i64, img[0][0].len() as i64);
    let reflect = |i: i64, n: i64| {
        if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        }
    };
    img.iter()
        .map(|ch| {
            let rows: Vec<Vec<f64>> = (0..h)
                .map(|y| {
                    (0..w)
                        .map(|x| {
                            (-half..=half)
                                .map(|d| {
                                    weights[(d + half) as usize]
                                        * ch[y as usize][reflect(x + d, w) as usize]
                                })
                                .sum()
                        })
                        .collect()
                })
                .collect();
            (0..h)
                .map(|y| {
                    (0..w)
                        .map(|x| {
                            (-half..=half)
                                .map(|d| {
                                    weights[(d + half) as usize]
                                        * rows[reflect(y + d, h) as usize][x as usize]
                                })
                                .sum()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

#[test]
fn gaussian_blur_matches_a_reflected_f64_convolution_per_image_sigma() {
    let x = colours(3, 7, 9);
    let px = pixels(&x);
    let sigmas = [0.1f32, 0.8, 2.0];
    let got = gaussian_blur(&x, &sigmas, 5).unwrap();
    let want: Vec<_> = px
        .iter()
        .zip(sigmas)
        .map(|(img, s)| blur_ref(img, s as f64, 5))
        .collect();
    assert_close(&got, &want, 1e-5, "blur");
    // sigma 0.1 leaves the image nearly as it is; sigma 2 does not.
    assert!(max_diff(&got.get(0), &x.get(0)) < 1e-4);
    assert!(max_diff(&got.get(2), &x.get(2)) > 0.05);
    // The kernel follows the image size: 10% of the side, odd, at least 3, never wider than
    // the reflection allows.
    let c = SimclrConfig::default();
    assert_eq!(
        [
            c.blur_kernel_size(96),
            c.blur_kernel_size(32),
            c.blur_kernel_size(224),
            c.blur_kernel_size(2)
        ],
        [11, 3, 23, 3]
    );
    assert_eq!(c.blur_kernel_size(1), 1);
    assert!(matches!(
        gaussian_blur(&x, &sigmas, 15),
        Err(AugmentError::Range { .. })
    ));
    assert!(matches!(
        gaussian_blur(&x, &sigmas[..2], 3),
        Err(AugmentError::Count { .. })
    ));
}

/// A 16x16 uint8 image whose value is linear in the position: `3 x + 5 y` in every channel
/// (bilinear resampling is exact on it).
fn ramp() -> Tensor {
    let v: Vec<u8> = (0..3)
        .flat_map(|_| (0..16).flat_map(|y| (0..16).map(move |x| (3 * x + 5 * y) as u8)))
        .collect();
    Tensor::from_slice(&v).view([1, 3, 16, 16])
}

fn quiet(n: usize, h: usize, w: usize) -> SimclrParams {
    SimclrParams::identity(n, h, w)
}

#[test]
fn a_resized_crop_samples_where_torchvisions_resize_of_the_crop_does() {
    let cfg = SimclrConfig::default();
    let x = ramp();
    let out = |p: &SimclrParams| apply_simclr(&x, p, &cfg, CPU, MemoryFormat::Contiguous).unwrap();
    // The whole image, no flip: the rescaled input.
    let id = out(&quiet(1, 16, 16));
    assert!(max_diff(&id, &(x.to_kind(Kind::Float) / 255.0)) < 1e-6);
    // Crop 8x8 at (left 2, top 4): output pixel k samples 2 + 8 (k + 0.5) / 16 - 0.5.
    let mut p = quiet(1, 16, 16);
    p.crop[0] = [2.0, 4.0, 8.0, 8.0];
    for flip in [false, true] {
        p.flip[0] = flip;
        let got = pixels(&out(&p));
        for y in 0..16 {
            for k in 0..16 {
                let kx = if flip { 15 - k } else { k };
                let sx = 2.0 + 8.0 * (kx as f64 + 0.5) / 16.0 - 0.5;
                let sy = 4.0 + 8.0 * (y as f64 + 0.5) / 16.0 - 0.5;
                let want = (3.0 * sx + 5.0 * sy) / 255.0;
                for c in 0..3 {
                    let g = got[0][c][y][k];
                    assert!(
                        (g - want).abs() < 1e-5,
                        "flip {flip} ({k}, {y}): {g} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_jitter_runs_each_images_operations_in_its_own_order_then_grayscale_and_blur() {
    let cfg = SimclrConfig::default();
    let images = (colours(2, 6, 6) * 255.0).round().to_kind(Kind::Uint8);
    let x = images.to_kind(Kind::Float) / 255.0;
    let factors = [1.3f32, 0.6, 1.8, 0.2];
    let forward = [
        ColorOp::Brightness,
        ColorOp::Contrast,
        ColorOp::Saturation,
        ColorOp::Hue,
    ];
    let backward = [
        ColorOp::Hue,
        ColorOp::Saturation,
        ColorOp::Contrast,
        ColorOp::Brightness,
    ];
    let mut p = quiet(2, 6, 6);
    p.jitter = vec![
        Some(Jitter {
            order: forward,
            factors,
        }),
        Some(Jitter {
            order: backward,
            factors,
        }),
    ];
    let got = apply_simclr(&images, &p, &cfg, CPU, MemoryFormat::Contiguous).unwrap();
    let run = |img: Tensor, order: [ColorOp; 4]| {
        order.iter().fold(img, |t, op| {
            let f = [factors[*op as usize]];
            match op {
                ColorOp::Brightness => adjust_brightness(&t, &f),
                ColorOp::Contrast => adjust_contrast(&t, &f),
                ColorOp::Saturation => adjust_saturation(&t, &f),
                ColorOp::Hue => adjust_hue(&t, &f),
            }
        })
    };
    let first = run(x.narrow(0, 0, 1), forward);
    let second = run(x.narrow(0, 1, 1), backward);
    assert!(max_diff(&got.narrow(0, 0, 1), &first) < 1e-6);
    assert!(max_diff(&got.narrow(0, 1, 1), &second) < 1e-6);
    // The order matters, so the test would see a fixed order.
    assert!(max_diff(&run(x.narrow(0, 1, 1), forward), &second) > 1e-3);
    // Grayscale and blur after the jitter, on their own images only.
    p.grayscale = vec![true, false];
    p.blur = vec![None, Some(1.5)];
    let got = apply_simclr(&images, &p, &cfg, CPU, MemoryFormat::Contiguous).unwrap();
    let gray = grayscale(&first).expand([-1, 3, -1, -1], false);
    assert!(max_diff(&got.narrow(0, 0, 1), &gray) < 1e-6);
    let blurred = gaussian_blur(&second, &[1.5], cfg.blur_kernel_size(6)).unwrap();
    assert!(max_diff(&got.narrow(0, 1, 1), &blurred) < 1e-6);
}

#[test]
fn drawn_parameters_follow_the_papers_distributions() {
    let cfg = SimclrConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 20_000;
    let p = SimclrParams::sample(&cfg, n, 32, 48, &mut rng);
    let share =
        |flags: &mut dyn Iterator<Item = bool>| flags.filter(|b| *b).count() as f64 / n as f64;
    let near = |got: f64, want: f64| (got - want).abs() < 0.015;
    assert!(near(share(&mut p.flip.iter().copied()), 0.5));
    assert!(near(share(&mut p.jitter.iter().map(Option::is_some)), 0.8));
    assert!(near(share(&mut p.grayscale.iter().copied()), 0.2));
    assert!(near(share(&mut p.blur.iter().map(Option::is_some)), 0.5));
    let mut areas = Vec::new();
    for &[left, top, w, h] in &p.crop {
        assert!(left >= 0.0 && top >= 0.0 && left + w <= 48.0 && top + h <= 32.0);
        assert_eq!(
            (left.fract(), top.fract(), w.fract(), h.fract()),
            (0.0, 0.0, 0.0, 0.0)
        );
        let (ratio, area) = (w / h, w * h / (32.0 * 48.0));
        // Rounding to whole pixels widens the ranges a little at small sizes.
        assert!(ratio > 0.6 && ratio < 1.6, "{ratio}");
        assert!(area > 0.05 && area <= 1.0, "{area}");
        areas.push(area as f64);
    }
    // Areas up to 0.75 always fit a first try at every ratio of [3/4, 4/3] in a square image,
    // so their density is flat there: equal counts in equal bins.
    let square = SimclrParams::sample(&cfg, n, 64, 64, &mut rng);
    let bins = [0.1, 0.3, 0.5, 0.7].windows(2).map(|b| {
        let within = |c: &&[f32; 4]| {
            let a = (c[2] * c[3] / 4096.0) as f64;
            a >= b[0] && a < b[1]
        };
        square.crop.iter().filter(within).count() as f64 / n as f64
    });
    let bins: Vec<f64> = bins.collect();
    for b in &bins {
        // 0.2 of the 0.92-wide range (0.217), a little more from the retries of large areas
        // that did not fit, which are spread over every bin alike.
        assert!((b - bins[0]).abs() < 0.015 && *b > 0.2 / 0.92, "{bins:?}");
    }
    assert!(areas.iter().any(|a| *a < 0.1) && areas.iter().any(|a| *a > 0.6));
    let mut first = [0usize; 4];
    for j in p.jitter.iter().flatten() {
        first[j.order[0] as usize] += 1;
        let mut sorted = j.order.map(|o| o as usize);
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        for (k, f) in j.factors.iter().enumerate().take(3) {
            assert!((0.2..=1.8).contains(f), "factor {k}: {f}");
        }
        assert!(j.factors[3].abs() <= 0.2);
    }
    let jittered = p.jitter.iter().flatten().count() as f64;
    for f in first {
        assert!((f as f64 / jittered - 0.25).abs() < 0.015, "{first:?}");
    }
    for s in p.blur.iter().flatten() {
        assert!((0.1..=2.0).contains(s));
    }
}

#[test]
fn a_simclr_augmenter_is_seeded_resumable_and_writes_either_layout() {
    let images = (colours(6, 12, 12) * 255.0).to_kind(Kind::Uint8);
    let cfg = SimclrConfig::default();
    let mut a = Augmenter::new(cfg, 9, CPU).unwrap();
    let mut b = Augmenter::new(Preset::Simclr(cfg), 9, CPU).unwrap();
    assert!(matches!(a.preset(), Preset::Simclr(_)));
    let va = a.augment(&images).unwrap();
    assert!(va.equal(&b.augment(&images).unwrap()));
    assert!(va.min().double_value(&[]) >= 0.0 && va.max().double_value(&[]) <= 1.0);
    assert!(
        max_diff(&va, &(images.to_kind(Kind::Float) / 255.0)) > 0.05,
        "it changes the images"
    );
    let pos = a.stream_position();
    let next = a.augment(&images).unwrap();
    let mut c = Augmenter::new(cfg, 9, CPU)
        .unwrap()
        .with_format(MemoryFormat::ChannelsLast);
    c.seek(pos);
    let cl = c.augment(&images).unwrap();
    assert_eq!(MemoryFormat::of(&cl), MemoryFormat::ChannelsLast);
    assert!(max_diff(&cl, &next) < 1e-6);
    assert!(a.sample(2, 8, 8).is_none() && a.sample_simclr(2, 8, 8).is_some());
}

#[test]
fn invalid_simclr_settings_and_batches_are_errors() {
    let with = |set: fn(&mut SimclrConfig)| {
        let mut c = SimclrConfig::default();
        set(&mut c);
        c
    };
    for (cfg, field) in [
        (with(|c| c.crop_scale = [0.0, 1.0]), "crop_scale"),
        (with(|c| c.crop_scale = [0.5, 0.2]), "crop_scale"),
        (with(|c| c.crop_ratio = [-1.0, 1.0]), "crop_ratio"),
        (with(|c| c.jitter_probability = 1.5), "jitter_probability"),
        (with(|c| c.hue = 0.6), "hue"),
        (with(|c| c.contrast = -0.1), "contrast"),
        (with(|c| c.blur_sigma = [0.0, 1.0]), "blur_sigma"),
        (with(|c| c.blur_kernel = 0.0), "blur_kernel"),
    ] {
        let e = Augmenter::new(cfg, 0, CPU).unwrap_err();
        assert_eq!(e.field(), Some(field), "{e}");
    }
    let cfg = SimclrConfig::default();
    let grey = Tensor::zeros([2, 1, 8, 8], (Kind::Uint8, CPU));
    let mut a = Augmenter::new(cfg, 0, CPU).unwrap();
    assert!(matches!(a.augment(&grey), Err(AugmentError::Shape(_))));
    let rgb = Tensor::zeros([2, 3, 8, 8], (Kind::Uint8, CPU));
    let e = apply_simclr(&rgb, &quiet(3, 8, 8), &cfg, CPU, MemoryFormat::Contiguous).unwrap_err();
    assert!(matches!(
        e,
        AugmentError::Count {
            params: 3,
            images: 2
        }
    ));
}
