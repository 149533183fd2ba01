use models::{
    Architecture, Classifier, Encoder, EncoderConfig, HeadConfig, LinearProbe, MemoryFormat,
    ModelError, ProjectionHead, Stem,
};
use tch::nn::{self, Module, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn numel(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[test]
fn parameter_counts_equal_keras() {
    let vs = nn::VarStore::new(Device::Cpu);
    let encoder = Encoder::new(&(vs.root() / "encoder"), &EncoderConfig::default()).unwrap();
    assert_eq!(numel(&vs), 3_584 + 3 * 147_584 + 409_728);
    assert_eq!(numel(&vs), 856_064);
    assert_eq!(encoder.summary().total_params(), 856_064);

    let vs = nn::VarStore::new(Device::Cpu);
    let head = ProjectionHead::new(
        &(vs.root() / "projection_head"),
        128,
        &HeadConfig::default(),
    )
    .unwrap();
    assert_eq!(
        (numel(&vs), head.summary().total_params()),
        (33_024, 33_024)
    );

    let vs = nn::VarStore::new(Device::Cpu);
    let probe = LinearProbe::new(&(vs.root() / "linear_probe"), 128, 10);
    assert_eq!((numel(&vs), probe.summary().total_params()), (1_290, 1_290));

    let vs = nn::VarStore::new(Device::Cpu);
    let clf = Classifier::new(&vs.root(), &EncoderConfig::default(), 10).unwrap();
    assert_eq!(
        (numel(&vs), clf.summary().total_params()),
        (857_354, 857_354)
    );
}

#[test]
fn variables_have_stable_names() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _e = Encoder::new(&(vs.root() / "encoder"), &EncoderConfig::default()).unwrap();
    let _h = ProjectionHead::new(
        &(vs.root() / "projection_head"),
        128,
        &HeadConfig::default(),
    );
    let _p = LinearProbe::new(&(vs.root() / "linear_probe"), 128, 10);
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    let mut expected: Vec<String> = ["conv1", "conv2", "conv3", "conv4", "dense"]
        .iter()
        .flat_map(|l| [format!("encoder.{l}.bias"), format!("encoder.{l}.weight")])
        .chain(["linear_probe.dense.bias", "linear_probe.dense.weight"].map(String::from))
        .chain(["dense1", "dense2"].iter().flat_map(|l| {
            [
                format!("projection_head.{l}.bias"),
                format!("projection_head.{l}.weight"),
            ]
        }))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn input_size_sets_the_flattened_size_and_too_small_is_an_error() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = EncoderConfig {
        image_size: 32,
        width: 16,
        ..Default::default()
    };
    let e = Encoder::new(&vs.root(), &cfg).unwrap();
    assert_eq!(cfg.conv_sides().unwrap(), [15, 7, 3, 1]);
    assert_eq!(
        EncoderConfig::default().conv_sides().unwrap(),
        [47, 23, 11, 5]
    );
    let out = e.forward_t(
        &Tensor::rand([3, 3, 32, 32], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(out.size(), [3, 16]);
    assert!(out.min().double_value(&[]) >= 0.0, "ReLU output");
    let err = Encoder::new(
        &vs.root(),
        &EncoderConfig {
            image_size: 30,
            width: 8,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, ModelError::InputTooSmall { size: 30, min: 31 });
    assert!(err.to_string().contains("30x30 is too small"));
    assert!(
        Encoder::new(
            &vs.root(),
            &EncoderConfig {
                image_size: 31,
                width: 8,
                ..Default::default()
            }
        )
        .is_ok()
    );
    assert!(Classifier::new(&vs.root(), &cfg, 0).is_err());
}

#[test]
fn initialisation_is_glorot_uniform_with_zero_biases() {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let _e = Encoder::new(&(vs.root() / "encoder"), &EncoderConfig::default()).unwrap();
    let vars = vs.variables();
    // conv2: fan_in = fan_out = 128 * 9; dense: 3200 in, 128 out.
    for (name, fan_in, fan_out) in [
        ("encoder.conv2.weight", 1152.0, 1152.0),
        ("encoder.dense.weight", 3200.0, 128.0),
        ("encoder.conv1.weight", 27.0, 1152.0),
    ] {
        let w = &vars[name];
        let limit = (6.0f64 / (fan_in + fan_out)).sqrt();
        let max = w.abs().max().double_value(&[]);
        assert!(
            max <= limit && max > 0.98 * limit,
            "{name}: max {max} vs limit {limit}"
        );
        let var = w.to_kind(Kind::Double).var(false).double_value(&[]);
        assert!(
            (var / (limit * limit / 3.0) - 1.0).abs() < 0.05,
            "{name}: variance {var}"
        );
    }
    for l in ["conv1", "conv4", "dense"] {
        assert_eq!(
            vars[&format!("encoder.{l}.bias")]
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
    }
}

#[test]
fn summary_reads_like_keras() {
    let vs = nn::VarStore::new(Device::Cpu);
    let e = Encoder::new(&(vs.root() / "encoder"), &EncoderConfig::default()).unwrap();
    let text = e.summary().to_string();
    assert!(text.contains("Model: \"encoder\""), "{text}");
    assert!(
        text.contains("(None, 47, 47, 128)") && text.contains("3,584"),
        "{text}"
    );
    assert!(
        text.contains("(None, 5, 5, 128)") && text.contains("(None, 3200)"),
        "{text}"
    );
    assert!(text.contains("409,728"), "{text}");
    assert!(
        text.contains("Total params: 856,064") && text.contains("Non-trainable params: 0"),
        "{text}"
    );
}

#[test]
fn a_saved_encoder_loads_into_a_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encoder.safetensors");
    let cfg = EncoderConfig {
        image_size: 32,
        width: 8,
        ..Default::default()
    };
    let src = nn::VarStore::new(Device::Cpu);
    let enc = Encoder::new(&(src.root() / "encoder"), &cfg).unwrap();
    src.save(&path).unwrap();
    let mut dst = nn::VarStore::new(Device::Cpu);
    let clf = Classifier::new(&dst.root(), &cfg, 4).unwrap();
    let mut missing = dst.load_partial(&path).unwrap();
    missing.sort();
    assert_eq!(
        missing,
        ["classifier.dense.bias", "classifier.dense.weight"]
    );
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let diff = (enc.forward_t(&x, false) - clf.encoder.forward_t(&x, false))
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(diff, 0.0);
}

/// Features and every weight gradient of one forward + backward, in variable-name order.
fn features_and_grads(vs: &nn::VarStore, e: &Encoder, x: &Tensor) -> (Tensor, Vec<Tensor>) {
    // As in training: the optimizer drops the gradients (libtorch's zero_grad sets them to
    // None), so the next backward creates them afresh in the parameters' layout.
    nn::Sgd::default().build(vs, 0.0).unwrap().zero_grad();
    let features = e.forward_t(x, true);
    (&features * &features).sum(Kind::Float).backward();
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    (features, vars.into_iter().map(|(_, v)| v.grad()).collect())
}

#[test]
fn channels_last_gives_the_same_features_and_gradients_in_its_own_layout() {
    let vs = nn::VarStore::new(Device::Cpu);
    let e = Encoder::new(
        &vs.root(),
        &EncoderConfig {
            image_size: 40,
            width: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let x = Tensor::rand([2, 3, 40, 40], (Kind::Float, Device::Cpu));
    let (before, grads_before) = features_and_grads(&vs, &e, &x);
    e.set_memory_format(MemoryFormat::ChannelsLast);
    let x_cl = MemoryFormat::ChannelsLast.apply(&x);
    assert_eq!(MemoryFormat::of(&x_cl), MemoryFormat::ChannelsLast);
    let (after, grads_after) = features_and_grads(&vs, &e, &x_cl);
    assert!((before - after).abs().max().double_value(&[]) < 1e-5);
    assert_eq!(grads_before.len(), 10);
    for (a, b) in grads_before.iter().zip(&grads_after) {
        let scale = a.abs().max().double_value(&[]).max(1e-6);
        assert!((a - b).abs().max().double_value(&[]) / scale < 1e-4);
        if a.dim() == 4 {
            // Kernels and their gradients stay channels-last: no conversion in the step.
            assert_eq!(
                MemoryFormat::of(b),
                MemoryFormat::ChannelsLast,
                "{:?}",
                b.stride()
            );
        }
    }
    for (name, v) in vs.variables() {
        if v.dim() == 4 {
            assert_eq!(MemoryFormat::of(&v), MemoryFormat::ChannelsLast, "{name}");
        }
    }
}

#[test]
fn a_classifier_fits_a_tiny_problem() {
    // Two classes: bright left half vs bright right half, with noise.
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let clf = Classifier::new(
        &vs.root(),
        &EncoderConfig {
            image_size: 32,
            width: 16,
            ..Default::default()
        },
        2,
    )
    .unwrap();
    let mut opt = nn::Adam::default().build(&vs, 3e-3).unwrap();
    let n = 32;
    let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(2);
    let mask = Tensor::arange(32, (Kind::Float, Device::Cpu))
        .lt(16)
        .to_kind(Kind::Float)
        .view([1, 1, 1, 32]);
    let left = mask.expand([n, 3, 32, 32], false);
    let bright = left.where_self(&labels.view([n, 1, 1, 1]).eq(0), &(1.0 - &left));
    let x = bright * 0.8 + Tensor::rand([n, 3, 32, 32], (Kind::Float, Device::Cpu)) * 0.2;
    let loss_at = |opt: &mut nn::Optimizer| {
        let loss = clf.forward_t(&x, true).cross_entropy_for_logits(&labels);
        opt.backward_step(&loss);
        loss.double_value(&[])
    };
    let first = loss_at(&mut opt);
    let mut last = first;
    for _ in 0..60 {
        last = loss_at(&mut opt);
    }
    assert!(first > 0.5 && last < 0.05, "loss {first} -> {last}");
    let acc = clf
        .forward_t(&x, false)
        .accuracy_for_logits(&labels)
        .double_value(&[]);
    assert_eq!(acc, 1.0);
}

#[test]
fn heads_give_logits_of_the_right_shape_with_zero_bias() {
    tch::manual_seed(4);
    let vs = nn::VarStore::new(Device::Cpu);
    let probe = LinearProbe::new(&(vs.root() / "linear_probe"), 16, 10);
    let cfg = HeadConfig {
        width: 8,
        ..HeadConfig::default()
    };
    let head = ProjectionHead::new(&(vs.root() / "projection_head"), 16, &cfg).unwrap();
    let zeros = Tensor::zeros([3, 16], (Kind::Float, Device::Cpu));
    let logits = probe.forward(&zeros);
    assert_eq!(logits.size(), [3, 10]);
    assert_eq!(
        logits.abs().sum(Kind::Float).double_value(&[]),
        0.0,
        "zero bias: zero in, zero out"
    );
    let x = Tensor::rand([3, 16], (Kind::Float, Device::Cpu));
    let z = head.forward_t(&x, true);
    assert_eq!(z.size(), [3, 8]);
    assert!(
        z.min().double_value(&[]) < 0.0,
        "no ReLU after the last dense layer"
    );
}

#[test]
fn a_deeper_head_with_batch_norm_has_keras_counts_names_and_train_and_eval_modes() {
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = HeadConfig {
        layers: 3,
        width: 16,
        batch_norm: true,
    };
    let head = ProjectionHead::new(&(vs.root() / "projection_head"), 8, &cfg).unwrap();
    assert!(head.has_batch_norm());
    // Dense 8->16, BN(16), Dense 16->16, BN(16), Dense 16->16: Keras counts BN's 4 vectors.
    let want = (8 * 16 + 16) + 4 * 16 + (16 * 16 + 16) + 4 * 16 + (16 * 16 + 16);
    assert_eq!(head.summary().total_params(), want);
    // Trainable: all but the two BatchNorms' moving mean and variance.
    assert_eq!(numel(&vs), want - 2 * 2 * 16);
    let all: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
    assert_eq!(all, want);
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    assert!(
        names.contains(&"projection_head.bn2.running_mean".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"projection_head.dense3.weight".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("bn3")),
        "no BatchNorm after the last layer"
    );
    // Train mode normalises with the batch and updates the running statistics; eval mode uses
    // them: a batch and its first row alone agree in eval mode only.
    let x = Tensor::randn([6, 8], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
    let mean0 = vs.variables()["projection_head.bn1.running_mean"].copy();
    let all = head.forward_t(&x, true);
    assert!(!vs.variables()["projection_head.bn1.running_mean"].equal(&mean0));
    let one = head.forward_t(&x.narrow(0, 0, 2), true);
    assert!((all.narrow(0, 0, 2) - &one).abs().max().double_value(&[]) > 1e-3);
    let all = head.forward_t(&x, false);
    let one = head.forward_t(&x.narrow(0, 0, 2), false);
    assert!((all.narrow(0, 0, 2) - one).abs().max().double_value(&[]) < 1e-5);
    let zero = HeadConfig { layers: 0, ..cfg };
    let vs = nn::VarStore::new(Device::Cpu);
    assert!(ProjectionHead::new(&vs.root(), 8, &zero).is_err());
}

fn resnet(image_size: i64) -> EncoderConfig {
    EncoderConfig {
        arch: Architecture::Resnet18,
        image_size,
        ..Default::default()
    }
}

/// BatchNorm channels of ResNet-18: the stem's 64, four per stage and one per projection
/// shortcut (stages 2-4).
const RESNET18_BN_CHANNELS: i64 = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512;

#[test]
fn resnet18_has_torchvisions_parameter_counts_for_both_stems() {
    // torchvision's resnet18 has 11,689,512 parameters; without fc (512 x 1000 + 1000) that is
    // 11,176,512. The CIFAR stem's 3x3 kernels replace 7x7 ones: 3 x 64 x (49 - 9) fewer.
    for (size, params) in [(32, 11_168_832), (96, 11_176_512)] {
        let vs = nn::VarStore::new(Device::Cpu);
        let e = Encoder::new(&(vs.root() / "encoder"), &resnet(size)).unwrap();
        assert_eq!(numel(&vs), params, "{size}px");
        assert_eq!(
            params - 11_176_512,
            if size == 32 { -3 * 64 * 40 } else { 0 }
        );
        let summary = e.summary();
        assert_eq!(summary.trainable_params(), params);
        assert_eq!(summary.non_trainable_params(), 2 * RESNET18_BN_CHANNELS);
        let all: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        assert_eq!(summary.total_params(), all);
        assert_eq!(e.output_dim(), 512);
        let vs = nn::VarStore::new(Device::Cpu);
        let clf = Classifier::new(&vs.root(), &resnet(size), 10).unwrap();
        assert_eq!(numel(&vs), params + 512 * 10 + 10);
        assert_eq!(clf.summary().trainable_params(), params + 5_130);
    }
}

#[test]
fn resnet18_summary_shows_each_stem_and_the_stage_sides() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cifar = Encoder::new(&vs.root(), &resnet(32))
        .unwrap()
        .summary()
        .to_string();
    for want in [
        "(None, 32, 32, 64)",
        "layer2 (2 x BasicBlock)",
        "(None, 16, 16, 128)",
        "(None, 4, 4, 512)",
        "(None, 512)",
        "Trainable params: 11,168,832",
        "Non-trainable params: 9,600",
    ] {
        assert!(cifar.contains(want), "{want}: {cifar}");
    }
    assert!(!cifar.contains("MaxPooling2D"), "{cifar}");
    let vs = nn::VarStore::new(Device::Cpu);
    let imagenet = Encoder::new(&vs.root(), &resnet(96))
        .unwrap()
        .summary()
        .to_string();
    // 96 -> conv 48 -> pool 24 -> 24, 12, 6, 3.
    for want in [
        "(None, 48, 48, 64)",
        "MaxPooling2D",
        "(None, 24, 24, 64)",
        "(None, 3, 3, 512)",
    ] {
        assert!(imagenet.contains(want), "{want}: {imagenet}");
    }
}

#[test]
fn resnet18_stem_can_be_chosen_against_the_image_size() {
    assert!(!Stem::Auto.is_imagenet(64) && Stem::Auto.is_imagenet(65));
    assert!(Stem::Imagenet.is_imagenet(32) && !Stem::Cifar.is_imagenet(96));
    // The ImageNet stem on 32 px: 32 -> conv 16 -> pool 8 -> 8, 4, 2, 1.
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = EncoderConfig {
        stem: Stem::Imagenet,
        ..resnet(32)
    };
    let e = Encoder::new(&vs.root(), &cfg).unwrap();
    assert_eq!(vs.variables()["conv1.weight"].size(), [64, 3, 7, 7]);
    let text = e.summary().to_string();
    for want in ["(None, 16, 16, 64)", "MaxPooling2D", "(None, 1, 1, 512)"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let features = e.forward_t(
        &Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(features.size(), [2, 512]);
    // The CIFAR stem on 96 px keeps the full side in the first stage.
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = EncoderConfig {
        stem: Stem::Cifar,
        ..resnet(96)
    };
    let e = Encoder::new(&vs.root(), &cfg).unwrap();
    assert_eq!(vs.variables()["conv1.weight"].size(), [64, 3, 3, 3]);
    assert!(e.summary().to_string().contains("(None, 96, 96, 64)"));
}

#[test]
fn resnet18_variables_have_torchvisions_names_and_initialisation() {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let _e = Encoder::new(&(vs.root() / "encoder"), &resnet(32)).unwrap();
    let vars = vs.variables();
    for name in [
        "encoder.conv1.weight",
        "encoder.bn1.running_var",
        "encoder.layer1.1.conv2.weight",
        "encoder.layer2.0.downsample.0.weight",
        "encoder.layer2.0.downsample.1.running_mean",
        "encoder.layer4.1.bn2.bias",
    ] {
        assert!(vars.contains_key(name), "{name}");
    }
    assert!(!vars.contains_key("encoder.layer1.0.downsample.0.weight"));
    assert!(
        !vars.contains_key("encoder.conv1.bias"),
        "convolutions have no bias"
    );
    assert!(!vars.keys().any(|k| k.contains("fc")));
    // Kaiming normal, fan-out, ReLU gain: std = sqrt(2 / (out * k * k)).
    for (name, fan_out) in [
        ("encoder.layer4.0.conv1.weight", 512.0 * 9.0),
        ("encoder.layer3.0.downsample.0.weight", 256.0),
    ] {
        let std = vars[name].std(false).double_value(&[]);
        let want = (2.0f64 / fan_out).sqrt();
        assert!((std / want - 1.0).abs() < 0.02, "{name}: {std} vs {want}");
        assert!(vars[name].mean(Kind::Float).double_value(&[]).abs() < want * 0.01);
    }
    // BatchNorm as PyTorch initialises it: scale 1, offset 0, running mean 0 and variance 1.
    for (suffix, value) in [
        ("weight", 1.0),
        ("bias", 0.0),
        ("running_mean", 0.0),
        ("running_var", 1.0),
    ] {
        let t = &vars[&format!("encoder.layer3.1.bn1.{suffix}")];
        assert_eq!(t.size(), [256]);
        assert!((t - value).abs().max().double_value(&[]) == 0.0, "{suffix}");
    }
}

#[test]
fn resnet18_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_inference() {
    tch::manual_seed(12);
    let vs = nn::VarStore::new(Device::Cpu);
    let e = Encoder::new(&(vs.root() / "encoder"), &resnet(16)).unwrap();
    assert!(e.has_batch_norm());
    let x = Tensor::rand([6, 3, 16, 16], (Kind::Float, Device::Cpu));
    let first = |t: Tensor| t.narrow(0, 0, 2);
    let running = || vs.variables()["encoder.layer2.0.bn1.running_mean"].copy();
    // Inference: each image on its own, the running statistics untouched.
    let before = running();
    let all = tch::no_grad(|| e.forward_t(&x, false));
    let two = tch::no_grad(|| e.forward_t(&x.narrow(0, 0, 2), false));
    assert!((first(all) - &two).abs().max().double_value(&[]) < 1e-5);
    assert!(running().equal(&before));
    // Training: the batch normalises each image (the first two change with their company), and
    // the running statistics move by PyTorch's momentum 0.1.
    let all = e.forward_t(&x, true);
    let alone = e.forward_t(&x.narrow(0, 0, 2), true);
    assert!((first(all) - &alone).abs().max().double_value(&[]) > 1e-3);
    assert!(!running().equal(&before));
    // The stem's BatchNorm after one more training pass: 0.9 old + 0.1 batch mean of conv1.
    let stem_before = vs.variables()["encoder.bn1.running_mean"].copy();
    let conv1 = x.conv2d(
        &vs.variables()["encoder.conv1.weight"],
        None::<Tensor>,
        [1, 1],
        [1, 1],
        [1, 1],
        1,
    );
    let batch_mean = conv1.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
    let _ = e.forward_t(&x, true);
    let want = stem_before * 0.9 + batch_mean * 0.1;
    let got = vs.variables()["encoder.bn1.running_mean"].copy();
    assert!((got - want).abs().max().double_value(&[]) < 1e-5);
}

#[test]
fn resnet18_channels_last_gives_the_same_features_and_gradients() {
    // In float64: in float32 the stem's gradients already differ by 0.3% between two layouts
    // (BatchNorm's backward subtracts batch means, which amplifies rounding), in float64 by 1e-13.
    tch::manual_seed(13);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let e = Encoder::new(&vs.root(), &resnet(16)).unwrap();
    vs.double();
    let x = Tensor::rand([4, 3, 16, 16], (Kind::Double, Device::Cpu));
    let (before, grads_before) = features_and_grads(&vs, &e, &x);
    e.set_memory_format(MemoryFormat::ChannelsLast);
    let (after, grads_after) = features_and_grads(&vs, &e, &MemoryFormat::ChannelsLast.apply(&x));
    assert_eq!(before.size(), [4, 512]);
    assert!((before - after).abs().max().double_value(&[]) < 1e-10);
    let kernels = vs.variables().values().filter(|v| v.dim() == 4).count();
    // conv1, 16 block convolutions and 3 shortcut projections.
    assert_eq!(kernels, 20);
    let mut compared = 0;
    for (a, b) in grads_before.iter().zip(&grads_after) {
        if !a.defined() {
            continue; // running statistics have no gradient
        }
        let rel = (a - b).norm().double_value(&[]) / a.norm().double_value(&[]).max(1e-12);
        assert!(rel < 1e-9, "{rel} {:?}", a.size());
        compared += 1;
    }
    // 20 kernels and the scale and offset of 20 BatchNorms.
    assert_eq!(compared, 60);
    for (name, v) in vs.variables() {
        // A 1x1 kernel's memory is the same in both formats.
        if v.dim() == 4 && v.size()[2] > 1 {
            assert_eq!(MemoryFormat::of(&v), MemoryFormat::ChannelsLast, "{name}");
        }
    }
}
