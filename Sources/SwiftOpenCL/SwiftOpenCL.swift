public enum OpenCLPlaceholder {}
