package main

// linked names the optional packages this build links.
var linked = "prometheus "
