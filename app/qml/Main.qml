import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope
import Circuitscope.Canvas
import Circuitscope.Inspector

// The explorer's window (docs/ARCHITECTURE.md §12.4): the prompt on top; the attribution graph
// with its pruning sliders and scores; the pinned subgraph with its supernodes under it; on the
// right the inspector (connections and the feature card), the interventions and the model's
// output.
ApplicationWindow {
    id: window

    readonly property ExplorerController explorer: AppController.explorer

    width: 1440
    height: 900
    minimumWidth: 900
    minimumHeight: 560
    visible: true
    // "dallas.circuitscope.json • — tinyworld — Circuitscope"; a traced or imported graph not
    // saved as a session is "Untitled", and every session with unsaved edits carries the dot.
    title: (explorer.hasGraph ? (explorer.files.sessionPath !== "" ? explorer.files.sessionPath.split("/").pop() : "Untitled")
                                + (explorer.files.modified ? " •" : "") + " — " : "")
           + (AppController.hasModel ? AppController.modelName + " — Circuitscope" : "Circuitscope")
    color: Theme.window

    Binding {
        target: Theme
        property: "dark"
        value: window.explorer.settings.theme === "dark"
    }

    palette.window: Theme.window
    palette.windowText: Theme.text
    palette.base: Theme.panel
    palette.alternateBase: Theme.panelHeader
    palette.text: Theme.text
    palette.button: Theme.dark ? "#323845" : "#f7f8fa"
    palette.buttonText: Theme.text
    palette.highlight: Theme.accent
    palette.highlightedText: "#ffffff"
    palette.placeholderText: Theme.textFaint
    palette.toolTipBase: Theme.dark ? "#e4e7ee" : Theme.text
    palette.toolTipText: Theme.dark ? "#1c2230" : "#ffffff"
    palette.mid: Theme.border
    palette.light: Theme.dark ? "#3a4050" : "#ffffff"
    palette.midlight: Theme.dark ? "#30353f" : "#f0f2f5"
    palette.dark: Theme.dark ? "#15171c" : "#b8bec9"

    menuBar: MenuBar {
        objectName: "menuBar"
        Menu {
            title: "&File"
            delegate: ShortcutMenuItem {}
            Action { text: "&Open model…"; onTriggered: window.openModelDialog() }
            Action { text: "Open &transcoders…"; enabled: AppController.hasModel; onTriggered: window.fileDialogs.openFolder("transcoders", "Open a transcoder folder (circuit-tracer's format: config.yaml and weights)", AppController.browseFolder.toString()) }
            Action { text: "Open &feature store…"; enabled: AppController.hasModel; onTriggered: window.fileDialogs.open("store", "Open a feature store", ["Feature stores (*.db)", "All files (*)"]) }
            MenuSeparator {}
            Action { text: "&Open session or graph…"; shortcut: StandardKey.Open; onTriggered: window.openFileDialog() }
            Menu {
                id: recentMenu
                title: "Open &recent"
                enabled: window.explorer.files.recentFiles.count > 0
                Instantiator {
                    model: window.explorer.files.recentFiles
                    delegate: MenuItem {
                        required property string path
                        required property string name
                        text: name
                        onTriggered: window.requestOpen(path)
                    }
                    onObjectAdded: (index, object) => recentMenu.insertItem(index, object)
                    onObjectRemoved: (index, object) => recentMenu.removeItem(object)
                }
            }
            Action { text: "&Save session"; shortcut: StandardKey.Save; enabled: window.explorer.hasGraph
                onTriggered: window.explorer.files.sessionPath !== "" ? window.explorer.files.save() : window.saveSessionDialog(false) }
            Action { text: "Save session &as…"; shortcut: "Ctrl+Shift+S"; enabled: window.explorer.hasGraph; onTriggered: window.saveSessionDialog(false) }
            MenuSeparator {}
            Action { text: "&Export subgraph figure…"; shortcut: "Ctrl+E"; enabled: window.explorer.pinnedCount > 0
                onTriggered: window.exportFigureDialog("subgraph") }
            Action { text: "Export &graph figure…"; enabled: window.explorer.hasGraph
                onTriggered: window.exportFigureDialog("graph") }
            Action { text: "Export graph &JSON…"; enabled: window.explorer.hasGraph; onTriggered: window.exportJsonDialog() }
            MenuSeparator {}
            Action { text: "Se&ttings…"; shortcut: StandardKey.Preferences; onTriggered: settingsDialog.open() }
            Action { text: "&Quit"; shortcut: StandardKey.Quit; onTriggered: window.close() }
        }
        Menu {
            title: "&Edit"
            delegate: ShortcutMenuItem {}
            Action { text: window.explorer.canUndo ? "&Undo " + window.explorer.undoText : "&Undo"; shortcut: StandardKey.Undo
                enabled: window.explorer.canUndo; onTriggered: window.explorer.undo() }
            Action { text: window.explorer.canRedo ? "&Redo " + window.explorer.redoText : "&Redo"; shortcut: StandardKey.Redo
                enabled: window.explorer.canRedo; onTriggered: window.explorer.redo() }
            MenuSeparator {}
            Action { text: "&Pin or unpin selected"; shortcut: "P"; enabled: window.explorer.selectedId !== ""
                onTriggered: window.explorer.togglePin(window.explorer.selectedId) }
            Action { text: "&Hide selected"; shortcut: "H"; enabled: window.explorer.selectedId !== ""
                onTriggered: window.explorer.hideNode(window.explorer.selectedId) }
            Action { text: "Show hidden nodes (" + window.explorer.hiddenCount + ")"; enabled: window.explorer.hiddenCount > 0
                onTriggered: window.explorer.showAllNodes() }
            Action { text: "&Group checked nodes"; shortcut: "Ctrl+G"; enabled: window.explorer.checkedCount >= 2
                onTriggered: window.explorer.groupChecked("") }
            Action { text: "&Ablate selected"; shortcut: "A"; enabled: window.explorer.selectedId !== "" && window.explorer.interventionsAvailable
                onTriggered: window.explorer.interventions.add(window.explorer.selectedId, "ablate", 0, "") }
            MenuSeparator {}
            Action { text: "&Find"; shortcut: StandardKey.Find; onTriggered: searchField.forceActiveFocus() }
        }
        Menu {
            title: "&View"
            delegate: ShortcutMenuItem {}
            Action { text: "&Fit graph"; shortcut: "F"; onTriggered: window.fitAll() }
            Action { text: "&Collapse empty positions"; checkable: true; checked: window.explorer.collapseEmptyPositions
                onTriggered: window.explorer.collapseEmptyPositions = checked }
            MenuSeparator {}
            ActionGroup { id: themes }
            Action { text: "&Light theme"; checkable: true; ActionGroup.group: themes
                checked: window.explorer.settings.theme !== "dark"; onTriggered: window.explorer.settings.theme = "light" }
            Action { text: "&Dark theme"; checkable: true; ActionGroup.group: themes
                checked: window.explorer.settings.theme === "dark"; onTriggered: window.explorer.settings.theme = "dark" }
        }
        Menu {
            title: "&Help"
            delegate: ShortcutMenuItem {}
            Action { text: "&Keyboard shortcuts"; shortcut: StandardKey.HelpContents; onTriggered: helpDialogs.showKeys() }
            Action { text: "&About Circuitscope"; onTriggered: helpDialogs.showAbout() }
        }
    }

    HelpDialogs {
        id: helpDialogs
        objectName: "helpDialogs"
    }
    // Fit works wherever the focus is with Ctrl+0 (F types an f in a text field).
    Shortcut {
        sequences: ["Ctrl+0"]
        context: Qt.ApplicationShortcut
        onActivated: window.fitAll()
    }

    header: ModelHeader {
        onOpenRequested: window.openModelDialog()
    }
    footer: StatusBar {}

    SettingsDialog {
        id: settingsDialog
        anchors.centerIn: parent
        explorer: window.explorer
    }
    // Open, save and export: the platform's file dialogs where it has them (filedialogs.h).
    readonly property var fileDialogs: AppController.fileDialogs
    property bool saveCloseAfter: false // the close dialog's Save on a session never saved
    property string exportScope: "subgraph"
    // A file name from the graph's prompt: "fact-the-capital-of-the-state".
    function suggestedName() {
        const words = window.explorer.graphPrompt.toLowerCase().match(/[a-z0-9]+/g) || []
        let name = ""
        for (const w of words) {
            if ((name + "-" + w).length > 40)
                break
            name = name === "" ? w : name + "-" + w
        }
        return name === "" ? "circuit" : name
    }
    function openModelDialog() {
        fileDialogs.openFolder("model", "Open a Hugging Face model folder", AppController.browseFolder.toString())
    }
    function openFileDialog() {
        fileDialogs.open("open", "Open a session or a graph",
                         ["Sessions and graphs (*.circuitscope.json *.json *.csgraph)", "All files (*)"])
    }
    function saveSessionDialog(closeAfter) {
        window.saveCloseAfter = closeAfter
        fileDialogs.save("session", "Save the session", "Save", ["Circuitscope sessions (*.circuitscope.json)"],
                         "circuitscope.json", suggestedName() + ".circuitscope.json")
    }
    function exportFigureDialog(scope) {
        window.exportScope = scope
        fileDialogs.save("figure", scope === "subgraph" ? "Export the subgraph" : "Export the pruned graph", "Export",
                         ["SVG (*.svg)", "PDF (*.pdf)", "PNG (*.png)"], "svg",
                         suggestedName() + (scope === "subgraph" ? "-subgraph.svg" : "-graph.svg"))
    }
    function exportJsonDialog() {
        fileDialogs.save("graph-json", "Export graph JSON (Neuronpedia / circuit-tracer)", "Export",
                         ["Graph JSON (*.json)"], "json", suggestedName() + ".json")
    }
    Connections {
        target: window.fileDialogs
        function onAccepted(purpose, path) {
            if (purpose === "model") {
                AppController.openModel(path)
            } else if (purpose === "transcoders") {
                window.explorer.openTranscoders(path)
            } else if (purpose === "store") {
                window.explorer.openFeatureStore(path)
            } else if (purpose === "open") {
                window.requestOpen(path)
            } else if (purpose === "session") {
                if (window.explorer.files.saveSession(path) && window.saveCloseAfter)
                    window.runPending()
                window.saveCloseAfter = false
            } else if (purpose === "figure") {
                window.explorer.files.exportFigure(path, window.exportScope)
            } else if (purpose === "graph-json") {
                window.explorer.files.exportGraphJson(path)
            }
        }
        function onRejected(purpose) {
            if (purpose === "session") {
                window.saveCloseAfter = false
                window.pendingAction = null
                window.explorer.showStatus("Save cancelled")
            } else if (purpose === "open" || purpose === "model" || purpose === "transcoders" || purpose === "store") {
                window.explorer.showStatus("Open cancelled")
            } else {
                window.explorer.showStatus("Export cancelled")
            }
        }
    }

    Dialog {
        id: recoveryDialog
        objectName: "recoveryDialog"
        anchors.centerIn: parent
        modal: true
        title: "Recover your last session?"
        visible: window.explorer.files.recoveryAvailable
        standardButtons: Dialog.Yes | Dialog.No
        Label {
            width: 380
            wrapMode: Text.Wrap
            text: "Circuitscope did not close cleanly last time. Its autosave holds the graph and what you did to it."
        }
        onAccepted: window.explorer.files.recoverSession()
        onRejected: window.explorer.files.discardRecovery()
    }

    // Closing, or opening another session or graph, with unsaved edits asks first (Save,
    // Discard, Cancel); the action waits in pendingAction. A clean exit removes the autosave.
    property bool closeConfirmed: false
    property var pendingAction: null
    property string pendingText: ""
    function runPending() {
        const action = window.pendingAction
        window.pendingAction = null
        if (action)
            action()
    }
    function askFirst(text, action) {
        if (!window.explorer.files.modified) {
            action()
            return
        }
        window.pendingText = text
        window.pendingAction = action
        closeDialog.open()
    }
    // F and Ctrl+0: both canvases fit their panes.
    function fitAll() {
        graphView.fitToView()
        subgraphPane.view.fitToView()
    }
    // Opens a session or graph (a path or file:// URL), asking first when edits are unsaved.
    function requestOpen(path) {
        askFirst("Save the session before opening another?", () => window.explorer.files.openFile(path))
    }
    onClosing: close => {
        if (window.explorer.files.modified && !window.closeConfirmed) {
            close.accepted = false
            askFirst("Save the session before closing?", () => {
                window.closeConfirmed = true
                window.close()
            })
            return
        }
        window.explorer.files.finishSession()
    }

    Dialog {
        id: closeDialog
        objectName: "closeDialog"
        anchors.centerIn: parent
        modal: true
        title: window.pendingText !== "" ? window.pendingText : "Save the session before closing?"
        standardButtons: Dialog.Save | Dialog.Discard | Dialog.Cancel
        Label {
            width: 380
            wrapMode: Text.Wrap
            text: "The session has edits that are not saved in a file."
        }
        onAccepted: {
            if (window.explorer.files.sessionPath !== "" && window.explorer.files.save()) {
                window.runPending()
            } else {
                window.saveSessionDialog(true)
            }
        }
        onDiscarded: {
            close()
            window.runPending()
        }
        onRejected: {
            window.pendingAction = null
            window.explorer.showStatus("Cancelled: the session stays open")
        }
    }

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: Theme.spacing
        spacing: Theme.spacing

        PromptPanel {
            id: promptPanel
            objectName: "promptPanel"
            Layout.fillWidth: true
            Layout.preferredHeight: wantedHeight
            compact: window.height < 820
        }

        StackLayout {
            Layout.fillWidth: true
            Layout.fillHeight: true
            currentIndex: AppController.hasModel || window.explorer.hasGraph ? 1 : 0

            NoModelView {
                onOpenRequested: window.openModelDialog()
            }

            SplitView {
                orientation: Qt.Horizontal

                SplitView {
                    SplitView.fillWidth: true
                    SplitView.minimumWidth: 420
                    orientation: Qt.Vertical
                    // A handle one can see and grab.
                    handle: Rectangle {
                        objectName: "graphSplitter"
                        implicitHeight: 6
                        color: SplitHandle.pressed ? Theme.accent : SplitHandle.hovered ? Theme.border : Theme.divider
                        Rectangle {
                            anchors.centerIn: parent
                            width: 36
                            height: 2
                            radius: 1
                            color: Theme.textMuted
                        }
                    }

                    Panel {
                        SplitView.fillHeight: true
                        SplitView.minimumHeight: 200
                        title: "Attribution graph"
                        subtitle: window.explorer.hasGraph ? "“" + window.explorer.graphPrompt + "” · " + window.explorer.traceText
                                                           : (window.explorer.tracing ? "Tracing…" : window.explorer.resourcesText)
                        headerItems: [
                            Label {
                                visible: searchField.text.length > 0
                                text: window.explorer.searchHits + " found"
                                color: window.explorer.searchHits > 0 ? Theme.textMuted : Theme.error
                                font.pointSize: Theme.smallSize
                            },
                            TextField {
                                id: searchField
                                objectName: "searchField"
                                Layout.preferredWidth: 200
                                placeholderText: "Search labels and tokens (Ctrl+F)"
                                selectByMouse: true
                                onTextChanged: window.explorer.searchText = text
                                // Enter selects the next match.
                                onAccepted: {
                                    const next = window.explorer.nextSearchHit(window.explorer.selectedId)
                                    if (next !== "") {
                                        window.explorer.select(next)
                                        graphView.centerOnId(next)
                                    }
                                }
                            }
                        ]

                        ColumnLayout {
                            anchors.fill: parent
                            spacing: 0
                            PruneBar {
                                id: pruneBar
                                Layout.fillWidth: true
                                explorer: window.explorer
                            }
                            GraphView {
                                id: graphView
                                objectName: "graphView"
                                Layout.fillWidth: true
                                Layout.fillHeight: true
                                source: window.explorer.mainScene
                                captionBackground: Theme.dark ? "#d0262a33" : "#d0ffffff"
                                axisColor: Theme.textMuted
                                axisBackground: Theme.dark ? "#1b1e24" : "#eef0f3"
                                // The layout spreads the layers over the pane's height.
                                onWidthChanged: aspectTimer.restart()
                                onHeightChanged: aspectTimer.restart()
                                Timer {
                                    id: aspectTimer
                                    interval: 120
                                    onTriggered: if (graphView.width > 60 && graphView.height > 60)
                                                     window.explorer.setCanvasAspect((graphView.height - 22) / (graphView.width - 34))
                                }
                                Component.onCompleted: aspectTimer.restart()
                                                    captionColor: Theme.text
                                onNodeClicked: (slot, graphIndex, id, modifiers) => window.explorer.clickNode(id, modifiers)
                                onBackgroundClicked: window.explorer.select("")
                                // The view goes into the session; a session's view comes back.
                                Connections {
                                    target: graphView.canvas
                                    function onViewChanged() {
                                        window.explorer.setView(graphView.zoom, graphView.centerX, graphView.centerY)
                                    }
                                }
                                Connections {
                                    target: window.explorer
                                    function onViewRequested(zoom, centerX, centerY) {
                                        graphView.canvas.setView(zoom, centerX, centerY)
                                    }
                                }
                            }
                        }
                    }

                    SubgraphPane {
                        id: subgraphPane
                        objectName: "subgraphPane"
                        // Collapsed to its header until something is pinned: the graph gets the height.
                        SplitView.preferredHeight: window.explorer.pinnedCount > 0 ? Math.min(300, window.height * 0.25) : 44
                        SplitView.minimumHeight: window.explorer.pinnedCount > 0 ? 120 : 44
                        explorer: window.explorer
                    }
                }

                ColumnLayout {
                    SplitView.preferredWidth: 400
                    SplitView.minimumWidth: 300
                    spacing: 0

                    TabBar {
                        id: tabs
                        objectName: "rightTabs"
                        Layout.fillWidth: true
                        TabButton { text: "Inspector" }
                        TabButton { objectName: "interventionsTab"; text: "Interventions" }
                        TabButton { text: "Output" }
                        TabButton { objectName: "sweepsTab"; text: "Sweeps" }
                        TabButton { objectName: "circuitTab"; text: "Circuit" }
                    }
                    StackLayout {
                        Layout.fillWidth: true
                        Layout.fillHeight: true
                        currentIndex: tabs.currentIndex

                        Inspector {
                            id: inspector
                            objectName: "inspector"
                            colors: InspectorColors { dark: Theme.dark }
                            hasNode: window.explorer.selectedId !== "" || window.explorer.cardOnly
                            standalone: window.explorer.cardOnly
                            nodeKind: window.explorer.cardOnly ? "feature" : window.explorer.selectedKind
                            title: window.explorer.cardOnly ? window.explorer.cardTitle
                                   : window.explorer.selectedLabel !== "" ? window.explorer.selectedLabel : window.explorer.selectedTitle
                            nodeId: window.explorer.selectedId
                            nodeLayer: window.explorer.cardOnly ? window.explorer.cardLayer : window.explorer.selectedLayer
                            nodePosition: window.explorer.selectedPosition
                            activation: inspector.carded && !window.explorer.cardOnly ? window.explorer.selectedActivation : NaN
                            cardNote: window.explorer.neurons.cardNote
                            influence: window.explorer.selectedInfluence
                            cumulativeShare: window.explorer.selectedCumulativeShare
                            inputs: window.explorer.inputs
                            outputs: window.explorer.outputs
                            card: window.explorer.featureCard
                            onNodeActivated: index => window.explorer.selectIndex(index)
                            cardSections: [
                                GlobalWeightsView {
                                    objectName: "globalWeights"
                                    // The transcoder's weights: a unit of the model has none here.
                                    visible: window.explorer.cardOnly || !window.explorer.neurons.graphInUnits
                                    Layout.fillWidth: true
                                    explorer: window.explorer
                                    colors: inspector.colors
                                }
                            ]
                        }
                        InterventionPanel {
                            explorer: window.explorer
                        }
                        ColumnLayout {
                            spacing: Theme.spacing
                            NextTokenPanel {
                                Layout.fillWidth: true
                                Layout.fillHeight: true
                            }
                            GenerationPanel {
                                Layout.fillWidth: true
                                Layout.preferredHeight: 200
                            }
                        }
                        SweepPanel {
                            objectName: "sweepPanel"
                            explorer: window.explorer
                            onFeatureActivated: tabs.currentIndex = 0
                        }
                        CircuitCurvePanel {
                            objectName: "circuitCurvePanel"
                            explorer: window.explorer
                        }
                    }
                }
            }
        }
    }
}
