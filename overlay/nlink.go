package overlay

// Subdirs counts the directories directly below n, for its link count
// (2 plus one ".." per subdirectory, as on a disk).
func (v *View) Subdirs(n *Node) int {
	return n.kids.dirs
}
