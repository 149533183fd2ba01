include!("../../build-support/link_torch.rs");
