fn main() {
    torch_link::link();
}
