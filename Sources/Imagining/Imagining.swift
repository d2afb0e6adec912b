// Image generation (generator student, scene composer) lands with the generator issue.
public enum Imagining {}
