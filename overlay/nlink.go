package overlay

// Subdirs counts the directories directly below n, for its link count
// (2 plus one ".." per subdirectory, as on a disk).
func (v *View) Subdirs(n *Node) int {
	c := 0
	for _, k := range n.kids {
		if k.Type == Dir {
			c++
		}
	}
	return c
}
