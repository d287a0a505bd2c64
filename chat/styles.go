package chat

import "charm.land/lipgloss/v2"

// The palette: ANSI 256 colours, which every terminal of the last decades
// shows, and which bubbletea lowers to what the terminal supports.
var (
	colAccent = lipgloss.Color("69")  // blue
	colOwn    = lipgloss.Color("35")  // green
	colOther  = lipgloss.Color("170") // magenta
	colRead   = lipgloss.Color("39")  // light blue
	colFaint  = lipgloss.Color("245")
	colError  = lipgloss.Color("203")
	colWarn   = lipgloss.Color("214")
)

var (
	stTitle    = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("231")).Background(colAccent).Padding(0, 1)
	stHeader   = lipgloss.NewStyle().Bold(true)
	stFaint    = lipgloss.NewStyle().Foreground(colFaint)
	stTabOn    = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("231")).Background(colAccent).Padding(0, 1)
	stTabOff   = lipgloss.NewStyle().Foreground(colFaint).Padding(0, 1)
	stSelected = lipgloss.NewStyle().Bold(true).Foreground(colAccent)
	stUnread   = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("231")).Background(colOther).Padding(0, 1)
	stOwn      = lipgloss.NewStyle().Bold(true).Foreground(colOwn)
	stOther    = lipgloss.NewStyle().Bold(true).Foreground(colOther)
	stDomain   = lipgloss.NewStyle().Foreground(colFaint).Italic(true)
	stQuote    = lipgloss.NewStyle().Foreground(colFaint)
	stMarker   = lipgloss.NewStyle().Foreground(colFaint).Italic(true)
	stRead     = lipgloss.NewStyle().Bold(true).Foreground(colRead)
	stError    = lipgloss.NewStyle().Foreground(colError)
	stNote     = lipgloss.NewStyle().Foreground(colOwn)
	stRequest  = lipgloss.NewStyle().Foreground(colWarn).Bold(true)
	stHelp     = lipgloss.NewStyle().Foreground(colFaint)
	stPrompt   = lipgloss.NewStyle().Foreground(colWarn).Bold(true)
	stGutterOn = lipgloss.NewStyle().Foreground(colAccent).Bold(true)
)
