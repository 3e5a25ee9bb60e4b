import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// Help ▸ Keyboard shortcuts and Help ▸ About.
Item {
    id: help
    function showKeys() { keysDialog.open() }
    function showAbout() {
        aboutLabel.text = AppController.aboutText()
        aboutDialog.open()
    }

    // What each key does, in the window (the menus show the same shortcuts beside their items).
    readonly property var keys: [
        ["Enter (prompt box)", "Trace the prompt's attribution graph"],
        ["F  or  Ctrl+0", "Fit the graph and the subgraph to their panes (F when no text field has the focus)"],
        ["Click a node", "Select it: its card, inputs and outputs"],
        ["Ctrl+click", "Pin or unpin a node (the subgraph)"],
        ["P", "Pin or unpin the selected node"],
        ["H", "Hide the selected node from the canvas"],
        ["A", "Ablate the selected feature"],
        ["Ctrl+G", "Group the checked subgraph nodes into a supernode"],
        ["Ctrl+F", "Search labels and tokens; Enter goes to the next match"],
        ["Wheel, drag", "Zoom and pan the canvas"],
        ["Ctrl+Z, Ctrl+Shift+Z", "Undo, redo (pins, labels, thresholds, interventions)"],
        ["Ctrl+S, Ctrl+Shift+S", "Save the session, save it as"],
        ["Ctrl+O", "Open a session or a graph JSON"],
        ["Ctrl+E", "Export the subgraph figure"],
    ]

    Dialog {
        id: keysDialog
        objectName: "keysDialog"
        parent: Overlay.overlay
        anchors.centerIn: parent
        modal: true
        title: "Keyboard shortcuts"
        standardButtons: Dialog.Close
        GridLayout {
            columns: 2
            columnSpacing: 3 * Theme.spacing
            rowSpacing: Theme.spacing
            Repeater {
                model: help.keys.length * 2
                Label {
                    required property int index
                    text: help.keys[Math.floor(index / 2)][index % 2]
                    font.bold: index % 2 === 0
                    color: Theme.text
                }
            }
        }
    }

    Dialog {
        id: aboutDialog
        objectName: "aboutDialog"
        parent: Overlay.overlay
        anchors.centerIn: parent
        modal: true
        title: "About Circuitscope"
        standardButtons: Dialog.Close
        width: 460
        Label {
            id: aboutLabel
            objectName: "aboutText"
            width: aboutDialog.availableWidth
            wrapMode: Text.Wrap
            color: Theme.text
        }
    }
}
